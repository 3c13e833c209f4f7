using Keel.Heartbeat;

namespace Keel.Gossip;

/// <summary>One member as this node sees it.</summary>
/// <param name="Id">The member id.</param>
/// <param name="Status">SWIM state.</param>
/// <param name="Incarnation">Latest incarnation known.</param>
/// <param name="Tags">Latest metadata known, or null.</param>
/// <param name="Health">Phi-accrual-fed view: Healthy, Suspect (SWIM suspect or phi over threshold) or Failed (dead or left).</param>
/// <param name="Phi">The phi-accrual suspicion level of the member's acks and messages.</param>
/// <param name="StatusSinceMs">When this node learnt the current status.</param>
/// <param name="SuspicionDeadlineMs">For a suspect: when it will be declared dead unless it refutes (shrinks with confirmations); else null.</param>
public readonly record struct MemberSnapshot(ulong Id, MemberStatus Status, long Incarnation, MemberTags? Tags, HealthState Health, double Phi, long StatusSinceMs, long? SuspicionDeadlineMs);
