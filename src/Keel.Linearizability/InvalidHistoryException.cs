namespace Keel.Linearizability;

/// <summary>
/// A history that cannot describe a real execution: an operation returning before it was called, completed twice,
/// or referenced by an id that was never issued. Raised while recording, so a broken simulator harness is caught at
/// the faulty line rather than reported later as a (false) linearizability violation.
/// </summary>
public sealed class InvalidHistoryException : Exception
{
    /// <summary>Creates the exception with a description of what is wrong with the history.</summary>
    public InvalidHistoryException(string message) : base(message) { }
}
