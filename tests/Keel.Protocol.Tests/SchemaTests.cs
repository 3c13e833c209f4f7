using Google.Protobuf.Reflection;

namespace Keel.Protocol.Tests;

/// <summary>
/// Schema-level compatibility: every message, enum and service that dotnet-etcd 10 (protos from etcd 3.6) knows must
/// exist in Keel's protos with the same full name, and every field with the same number, name, type and cardinality.
/// </summary>
public sealed class SchemaTests
{
    private static readonly (FileDescriptor Client, FileDescriptor Keel)[] Files =
    [
        (Mvccpb.KeyValue.Descriptor.File, Keel.Protocol.Etcd.Mvccpb.KeyValue.Descriptor.File),
        (Etcdserverpb.RangeRequest.Descriptor.File, Keel.Protocol.Etcd.Etcdserverpb.RangeRequest.Descriptor.File),
        (V3Lockpb.LockRequest.Descriptor.File, Keel.Protocol.Etcd.V3Lockpb.LockRequest.Descriptor.File),
        (V3Electionpb.CampaignRequest.Descriptor.File, Keel.Protocol.Etcd.V3Electionpb.CampaignRequest.Descriptor.File),
    ];

    /// <summary>
    /// Messages in dotnet-etcd 10 protos (generated from etcd 3.7.3) that Keel deliberately omits: the 3.7-only
    /// KV.RangeStream reply and an etcd-internal downgrade test message. No released etcd client sends them.
    /// </summary>
    private static readonly string[] KnownNewerFields = ["etcdserverpb.DowngradeVersionTestRequest", "etcdserverpb.RangeStreamResponse"];

    /// <summary>RPCs in dotnet-etcd's protos (generated from etcd 3.7.3) that no etcd 3.4-3.6 server has; Keel omits them for now.</summary>
    private static readonly string[] KnownNewerMethods = ["/etcdserverpb.KV/RangeStream"];

    [Fact]
    public void Every_client_message_field_exists_in_keel_with_the_same_number_name_and_type()
    {
        var missing = new List<string>();
        int checkedFields = 0;
        foreach ((FileDescriptor client, FileDescriptor keel) in Files)
        {
            Assert.Equal(client.Package, keel.Package);
            foreach (MessageDescriptor clientMessage in AllMessages(client.MessageTypes))
            {
                MessageDescriptor? keelMessage = FindMessage(keel, clientMessage.FullName);
                if (keelMessage is null)
                {
                    missing.Add(clientMessage.FullName);
                    continue;
                }

                foreach (FieldDescriptor clientField in clientMessage.Fields.InFieldNumberOrder())
                {
                    FieldDescriptor? keelField = keelMessage.FindFieldByNumber(clientField.FieldNumber);
                    string name = $"{clientMessage.FullName}.{clientField.Name}";
                    if (keelField is null)
                    {
                        missing.Add(name);
                        continue;
                    }

                    checkedFields++;
                    Assert.Equal(clientField.Name, keelField.Name);
                    Assert.Equal(clientField.FieldType, keelField.FieldType);
                    Assert.Equal(clientField.IsRepeated, keelField.IsRepeated);
                    Assert.Equal(clientField.RealContainingOneof?.Name, keelField.RealContainingOneof?.Name);
                    if (clientField.FieldType is FieldType.Message)
                    {
                        Assert.Equal(clientField.MessageType.FullName, keelField.MessageType.FullName);
                    }

                    if (clientField.FieldType is FieldType.Enum)
                    {
                        Assert.Equal(clientField.EnumType.FullName, keelField.EnumType.FullName);
                    }
                }
            }
        }

        Assert.True(
            KnownNewerFields.Order(StringComparer.Ordinal).SequenceEqual(missing.Order(StringComparer.Ordinal)),
            "missing from Keel: " + string.Join(", ", missing));
        Assert.True(checkedFields > 200, $"only {checkedFields} fields compared");
    }

    [Fact]
    public void Every_client_enum_value_has_the_same_number_in_keel()
    {
        foreach ((FileDescriptor client, FileDescriptor keel) in Files)
        {
            foreach (EnumDescriptor clientEnum in AllEnums(client))
            {
                EnumDescriptor? keelEnum = keel.Pool().FindDescriptor<EnumDescriptor>(clientEnum.FullName);
                Assert.True(keelEnum is not null, $"{clientEnum.FullName} missing");
                foreach (EnumValueDescriptor value in clientEnum.Values)
                {
                    EnumValueDescriptor? keelValue = keelEnum!.FindValueByNumber(value.Number);
                    Assert.True(keelValue is not null, $"{clientEnum.FullName}.{value.Name} = {value.Number} missing");
                    Assert.Equal(value.Name, keelValue!.Name);
                }
            }
        }
    }

    [Fact]
    public void Every_client_service_method_exists_in_keel_with_the_same_path_and_streaming()
    {
        int methods = 0;
        var missingMethods = new List<string>();
        foreach ((FileDescriptor client, FileDescriptor keel) in Files)
        {
            foreach (ServiceDescriptor clientService in client.Services)
            {
                ServiceDescriptor? keelService = keel.Services.SingleOrDefault(s => s.FullName == clientService.FullName);
                Assert.True(keelService is not null, $"service {clientService.FullName} missing");
                foreach (MethodDescriptor clientMethod in clientService.Methods)
                {
                    MethodDescriptor? keelMethod = keelService!.FindMethodByName(clientMethod.Name);
                    if (keelMethod is null)
                    {
                        missingMethods.Add($"/{clientService.FullName}/{clientMethod.Name}");
                        continue;
                    }

                    Assert.Equal(clientMethod.InputType.FullName, keelMethod.InputType.FullName);
                    Assert.Equal(clientMethod.OutputType.FullName, keelMethod.OutputType.FullName);
                    Assert.Equal(clientMethod.IsClientStreaming, keelMethod.IsClientStreaming);
                    Assert.Equal(clientMethod.IsServerStreaming, keelMethod.IsServerStreaming);
                    methods++;
                }
            }
        }

        Assert.Equal(KnownNewerMethods, missingMethods);
        Assert.True(methods >= 40, $"only {methods} methods compared");
    }

    internal static IEnumerable<MessageDescriptor> AllMessages(IEnumerable<MessageDescriptor> roots)
    {
        foreach (MessageDescriptor message in roots)
        {
            if (message.GetOptions()?.MapEntry == true)
            {
                continue;
            }

            yield return message;
            foreach (MessageDescriptor nested in AllMessages(message.NestedTypes))
            {
                yield return nested;
            }
        }
    }

    private static IEnumerable<EnumDescriptor> AllEnums(FileDescriptor file) =>
        file.EnumTypes.Concat(AllMessages(file.MessageTypes).SelectMany(m => m.EnumTypes));

    private static MessageDescriptor? FindMessage(FileDescriptor keel, string fullName) =>
        keel.Pool().FindDescriptor<MessageDescriptor>(fullName);
}

internal static class FileDescriptorPoolExtensions
{
    /// <summary>Keel's descriptors in one place: the file and its dependencies, searched by full name.</summary>
    public static DescriptorLookup Pool(this FileDescriptor file) => new(file);
}

internal sealed class DescriptorLookup(FileDescriptor root)
{
    public T? FindDescriptor<T>(string fullName)
        where T : class, IDescriptor =>
        Closure(root).SelectMany(AllDescriptors).OfType<T>().FirstOrDefault(d => d.FullName == fullName);

    private static IEnumerable<IDescriptor> AllDescriptors(FileDescriptor file)
    {
        foreach (MessageDescriptor message in SchemaTests.AllMessages(file.MessageTypes))
        {
            yield return message;
            foreach (EnumDescriptor nestedEnum in message.EnumTypes)
            {
                yield return nestedEnum;
            }
        }

        foreach (EnumDescriptor topEnum in file.EnumTypes)
        {
            yield return topEnum;
        }
    }

    private static IEnumerable<FileDescriptor> Closure(FileDescriptor file)
    {
        yield return file;
        foreach (FileDescriptor dependency in file.Dependencies)
        {
            foreach (FileDescriptor transitive in Closure(dependency))
            {
                yield return transitive;
            }
        }
    }
}
