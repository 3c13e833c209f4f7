using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Keel.Protocol.Tests;

/// <summary>
/// Wire-compatibility checks between dotnet-etcd's generated types and Keel's: serialize one, parse with the other,
/// then compare every field by number through the protobuf descriptors, so a field Keel lacks (which the parser would
/// keep only as an unknown field and silently re-emit) is caught rather than hidden by byte equality.
/// </summary>
internal static class WireAssert
{
    /// <summary>Serializes <paramref name="source"/>, parses it as <typeparamref name="TTarget"/>, checks every field and byte-identical re-serialization.</summary>
    public static TTarget Crosses<TTarget>(IMessage source, MessageParser<TTarget> parser)
        where TTarget : IMessage<TTarget>
    {
        byte[] bytes = source.ToByteArray();
        TTarget parsed = parser.ParseFrom(bytes);
        SameFields(source, parsed, source.Descriptor.Name);
        Assert.Equal(bytes, parsed.ToByteArray());
        return parsed;
    }

    /// <summary>Both messages have the same full proto name and, field by field number, the same name, type and value.</summary>
    public static void SameFields(IMessage expected, IMessage actual, string path)
    {
        Assert.Equal(expected.Descriptor.FullName, actual.Descriptor.FullName);
        foreach (FieldDescriptor expectedField in expected.Descriptor.Fields.InFieldNumberOrder())
        {
            string fieldPath = $"{path}.{expectedField.Name}";
            FieldDescriptor? actualField = actual.Descriptor.FindFieldByNumber(expectedField.FieldNumber);
            Assert.True(actualField is not null, $"{fieldPath} (#{expectedField.FieldNumber}) is missing from {actual.Descriptor.FullName}");
            Assert.Equal(expectedField.Name, actualField!.Name);
            Assert.Equal(expectedField.FieldType, actualField.FieldType);
            Assert.Equal(expectedField.IsRepeated, actualField.IsRepeated);
            if (expectedField.HasPresence)
            {
                Assert.True(
                    expectedField.Accessor.HasValue(expected) == actualField.Accessor.HasValue(actual),
                    $"{fieldPath}: presence differs");
            }

            object? expectedValue = expectedField.Accessor.GetValue(expected);
            object? actualValue = actualField.Accessor.GetValue(actual);
            if (expectedField.IsRepeated)
            {
                var expectedList = ((IEnumerable)expectedValue!).Cast<object?>().ToList();
                var actualList = ((IEnumerable)actualValue!).Cast<object?>().ToList();
                Assert.True(expectedList.Count == actualList.Count, $"{fieldPath}: {expectedList.Count} elements expected, {actualList.Count} found");
                for (int i = 0; i < expectedList.Count; i++)
                {
                    SameValue(expectedField, expectedList[i], actualList[i], $"{fieldPath}[{i}]");
                }
            }
            else
            {
                SameValue(expectedField, expectedValue, actualValue, fieldPath);
            }
        }
    }

    private static void SameValue(FieldDescriptor field, object? expected, object? actual, string path)
    {
        switch (field.FieldType)
        {
            case FieldType.Message:
                Assert.True((expected is null) == (actual is null), $"{path}: one side is unset");
                if (expected is not null)
                {
                    SameFields((IMessage)expected, (IMessage)actual!, path);
                }

                break;
            case FieldType.Enum:
                // The two sides are different generated enum types; the wire carries the number.
                Assert.True(Convert.ToInt32(expected) == Convert.ToInt32(actual), $"{path}: enum {expected} != {actual}");
                break;
            default:
                Assert.True(Equals(expected, actual), $"{path}: {expected} != {actual}");
                break;
        }
    }

    /// <summary>Every singular field outside a oneof is set to a non-default value, so a wire test exercises all of them.</summary>
    public static void FullyPopulated(IMessage message)
    {
        foreach (FieldDescriptor field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.RealContainingOneof is not null)
            {
                continue;
            }

            object? value = field.Accessor.GetValue(message);
            bool isSet = value switch
            {
                null => false,
                IList list => list.Count > 0,
                ByteString bytes => !bytes.IsEmpty,
                string text => text.Length > 0,
                bool flag => flag,
                Enum enumValue => Convert.ToInt64(enumValue) != 0,
                IMessage => true,
                _ => Convert.ToDecimal(value) != 0,
            };
            Assert.True(isSet, $"{message.Descriptor.FullName}.{field.Name} is left at its default");
        }
    }

    /// <summary>UTF-8 bytes of <paramref name="text"/>, for readable keys.</summary>
    public static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);
}
