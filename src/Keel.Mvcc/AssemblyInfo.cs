using System.Runtime.CompilerServices;

// The snapshot size arithmetic is tested past 2 GiB on synthetic histories that share one value array.
[assembly: InternalsVisibleTo("Keel.Mvcc.Tests")]
