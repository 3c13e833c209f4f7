using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Keel.Node.Tests")]
