import FillGuard
import FillGuardCore

/// The outcome of a simulated session: activity, broker work, safety exposure, latency and
/// every invariant violation found (continuously and at the end against the exchange's truth).
public struct SimulationReport: Sendable {
    /// Symbols traded.
    public var symbols: Int
    /// Trading time plus wind-down.
    public var seconds: Duration
    /// The seed used.
    public var seed: UInt64
    /// Probability of a failed broker request.
    public var faultRate: Double
    /// Native modify was available.
    public var nativeModify: Bool
    /// Replacement strategy (used without native modify).
    public var strategy: SymbolStateMachine.ReplaceStrategy
    /// How a position flipped against its bracket was covered.
    public var flippedPositionCover: FlippedPositionCover = .bracket
    /// Fills the exchange produced (duplicates not counted).
    public var fills: Int
    /// Fills FillGuard applied.
    public var fillsApplied: Int
    /// Brackets opened.
    public var positionsOpened: Int
    /// Positions closed.
    public var positionsClosed: Int
    /// Broker operations by kind.
    public var operations: [OrderOperation.Kind: Int]
    /// Of `operations`, those answered `notSent` (never sent: the broker unreachable).
    public var operationsNotSent = 0
    /// Retries after transient failures.
    public var retries: Int
    /// Circuit breaker openings.
    public var breakerTrips: Int
    /// Alerts raised.
    public var alerts: Int
    /// Alerts raised, by kind (kinds never raised are absent).
    public var alertsByKind: [Alert.Kind: Int] = [:]
    /// The first alerts raised (at most `alertSampleLimit`), as "kind position role: message".
    public var alertSamples: [String] = []
    /// How many alerts `alertSamples` keeps.
    public static let alertSampleLimit = 10
    /// Inputs refused, by code.
    public var rejected: [InputError.Code: Int]
    /// Corrections reconciliation made in this session, by kind: at recovery, and while trading
    /// (a fill found missing from the reports, adopted from the broker's executions).
    public var corrections: [ReconciliationCorrection.Kind: Int] = [:]
    /// Request faults the exchange injected, by kind.
    public var faultsInjected: [String: Int]
    /// Duplicate reports injected.
    public var duplicatesInjected: Int
    /// Reordered reports injected.
    public var reordersInjected: Int
    /// Share-seconds a position was not covered by its stop, per the exchange.
    public var unprotectedShareSeconds: String
    /// Share-seconds protective orders exceeded the position, per the exchange.
    public var overCoveredShareSeconds: String
    /// Fill-to-protective-operation latency.
    public var reaction: LatencySummary
    /// Violations seen while trading (rule 1 always, rule 2 for quiescent symbols).
    public var continuousViolations: [String]
    /// Violations at the end: FillGuard's invariants and differences from the exchange's truth.
    public var finalViolations: [String]
    /// Whether trading was stopped early on request (a signal), before its duration.
    public var interrupted = false
    /// With a journal: what recovery found at the start and what the journal wrote.
    public var journal: JournalSummary? = nil
    /// Against a FIX endpoint: the connection and the final check (the exchange-only figures,
    /// faults injected and exposure, are then left out).
    public var fix: FIXSummary? = nil

    /// The number of distinct invariant violations found.
    public var invariantViolations: Int { continuousViolations.count + finalViolations.count }

    /// The report as a JSON object.
    public var json: String {
        func string(_ text: String) -> String { JSONText.quote(text) }
        func object(_ pairs: [(String, String)]) -> String {
            "{" + pairs.map { "\(string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        }
        if let fix { return fixJSON(fix, string: string, object: object) }
        let kinds = OrderOperation.Kind.allCases
        return object([
            ("symbols", "\(symbols)"),
            ("seconds", string(Self.format(seconds))),
            ("seed", "\(seed)"),
            ("faultRate", "\(faultRate)"),
            ("nativeModify", "\(nativeModify)"),
            ("strategy", string(strategy.rawValue)),
            ("flippedCover", string(flippedPositionCover.rawValue)),
            ("fills", "\(fills)"),
            ("fillsApplied", "\(fillsApplied)"),
            ("positionsOpened", "\(positionsOpened)"),
            ("positionsClosed", "\(positionsClosed)"),
            ("brokerOperations", object(kinds.map { ($0.rawValue, "\(operations[$0] ?? 0)") })),
            ("operationsNotSent", "\(operationsNotSent)"),
            ("retries", "\(retries)"),
            ("breakerTrips", "\(breakerTrips)"),
            ("alerts", "\(alerts)"),
            ("alertsByKind", alertsByKindJSON(object)),
            ("alertSamples", "[" + alertSamples.map(string).joined(separator: ",") + "]"),
            ("rejectedInputs", object(InputError.Code.allCases.sorted { $0.rawValue < $1.rawValue }.map { ($0.rawValue, "\(rejected[$0] ?? 0)") })),
            ("corrections", object(ReconciliationCorrection.Kind.allCases.compactMap { kind in corrections[kind].map { (kind.rawValue, "\($0)") } })),
            ("faultsInjected", object(faultsInjected.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })),
            ("duplicatesInjected", "\(duplicatesInjected)"),
            ("reordersInjected", "\(reordersInjected)"),
            ("unprotectedShareSeconds", string(unprotectedShareSeconds)),
            ("overCoveredShareSeconds", string(overCoveredShareSeconds)),
            ("reactionLatencyMicros", object(reaction.jsonFields)),
            ("invariantViolations", "\(invariantViolations)"),
            ("violations", "[" + (continuousViolations + finalViolations).map(string).joined(separator: ",") + "]"),
            ("interrupted", "\(interrupted)"),
        ] + (journal.map { [journalJSON($0, string: string, object: object)] } ?? []))
    }

    /// The `journal` member of the JSON report: what recovery found, what the journal wrote, and
    /// which counts span every session of the journal (a resumed session).
    private func journalJSON(_ journal: JournalSummary, string: (String) -> String, object: ([(String, String)]) -> String) -> (String, String) {
        // The simulated exchange's fills span every session; a FIX session counts what it received.
        let fillsScope = fix == nil ? "allSessions" : "thisSession"
        let downtime = fix == nil ? [("downtimeSimulatedMillis", "\(journal.downtime.milliseconds)")] : []
        return ("journal", object([
            ("scope", object([("fills", string(fillsScope)), ("fillsApplied", string("thisSession")),
                              ("positionsOpened", string("thisSession")), ("positionsClosed", string("allSessions"))])),
            ("recordsReplayed", "\(journal.recovery.recordsReplayed)"),
            ("snapshotsLoaded", "\(journal.recovery.snapshotsLoaded)"),
            ("positionsRecovered", "\(journal.recovery.positions)"),
            ("rebuildMillis", "\(journal.recovery.rebuildDuration.milliseconds)"),
            ("corrections", object(ReconciliationCorrection.Kind.allCases.compactMap { kind in
                let count = journal.recovery.corrections.filter { $0.kind == kind }.count
                return count == 0 ? nil : (kind.rawValue, "\(count)")
            })),
            ("notices", "[" + journal.recovery.notices.map(string).joined(separator: ",") + "]"),
            ("heldSymbols", "[" + journal.recovery.heldSymbols.map { string($0.name) }.joined(separator: ",") + "]"),
            ("recordsWritten", "\(journal.written.records)"),
            ("batchesWritten", "\(journal.written.batches)"),
            ("snapshotsWritten", "\(journal.written.snapshots)"),
        ] + downtime + [
            ("failure", journal.failure.map(string) ?? "null"),
        ]))
    }

    /// The journal's lines of the text report.
    private func journalLines(_ journal: JournalSummary) -> [String] {
        let recovery = journal.recovery
        var lines = ["  journal               recovered \(recovery.positions) positions from \(recovery.recordsReplayed) records and \(recovery.snapshotsLoaded) snapshots in \(recovery.rebuildDuration.milliseconds) ms; wrote \(journal.written.records) records in \(journal.written.batches) batches"]
        if journal.downtime > .zero { lines.append("  downtime              \(journal.downtime.milliseconds) ms of market while the manager was down") }
        if let failure = journal.failure { lines.append("    ! the journal failed: \(failure)") }
        for notice in recovery.notices { lines.append("    ! \(notice)") }
        for correction in recovery.corrections.prefix(20) { lines.append("    ~ \(correction)") }
        if recovery.corrections.count > 20 { lines.append("    ~ ... \(recovery.corrections.count - 20) more corrections") }
        if !recovery.heldSymbols.isEmpty {
            lines.append("    held: \(recovery.heldSymbols.map(\.name).joined(separator: ", ")): nothing was sent or opened for "
                         + (recovery.heldSymbols.count == 1 ? "it" : "them") + " (a position mismatch; see `fillguard recover --release`)")
        }
        return lines
    }

    /// The report for a person.
    public var text: String {
        if let fix { return fixText(fix) }
        let kinds = OrderOperation.Kind.allCases
        var lines: [String] = []
        lines.append("FillGuard simulation: \(symbols) symbol\(symbols == 1 ? "" : "s"), \(Self.format(seconds)) s, seed \(seed), fault rate \(faultRate), \(nativeModify ? "native modify (replacing by \(strategy.rawValue))" : "no native modify (\(strategy.rawValue))")\(flippedPositionCover == .bracket ? "" : ", flipped cover \(flippedPositionCover.rawValue)")")
        if interrupted { lines.append("  interrupted: trading stopped early on request, then wound down and checked as usual") }
        if journal != nil {
            // A resumed session: the exchange and FillGuard's memory span every session so far.
            lines.append("  fills                 \(fills) at the exchange (all sessions), \(fillsApplied) applied (this session)")
            lines.append("  positions             \(positionsOpened) opened (this session), \(positionsClosed) closed (all sessions)")
        } else {
            lines.append("  fills                 \(fills) at the exchange, \(fillsApplied) applied")
            lines.append("  positions             \(positionsOpened) opened, \(positionsClosed) closed")
        }
        lines.append("  broker operations     " + kinds.map { "\($0.rawValue) \(operations[$0] ?? 0)" }.joined(separator: ", ")
                     + (operationsNotSent == 0 ? "" : " (\(operationsNotSent) of them not sent: the broker unreachable)"))
        lines.append("  retries               \(retries)")
        lines.append("  breaker trips         \(breakerTrips)")
        appendAlerts(to: &lines)
        lines.append("  rejected inputs       " + (rejected.isEmpty ? "0" : rejected.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")))
        lines.append("  corrections           " + (corrections.isEmpty ? "0" : ReconciliationCorrection.Kind.allCases.compactMap { kind in corrections[kind].map { "\(kind.rawValue) \($0)" } }.joined(separator: ", ")))
        lines.append("  faults injected       " + (faultsInjected.isEmpty ? "0" : faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) + ", duplicates \(duplicatesInjected), reorders \(reordersInjected)")
        lines.append("  unprotected           \(unprotectedShareSeconds) share-seconds")
        lines.append("  over-covered          \(overCoveredShareSeconds) share-seconds")
        lines.append("  reaction (µs)         \(reaction.text)")
        lines.append("  invariantViolations   \(invariantViolations)")
        for violation in (continuousViolations + finalViolations).prefix(20) { lines.append("    - \(violation)") }
        if continuousViolations.count + finalViolations.count > 20 { lines.append("    - ... \(continuousViolations.count + finalViolations.count - 20) more violations (all of them in --json)") }
        if let journal { lines += journalLines(journal) }
        return lines.joined(separator: "\n")
    }

    /// What the FIX connection did in a session against a FIX endpoint, and what the final check saw.
    public struct FIXSummary: Sendable {
        /// host:port.
        public var endpoint: String
        /// Our SenderCompID.
        public var senderCompID: String
        /// The counterparty's CompID.
        public var targetCompID: String
        /// Prefix of this run's position and order ids.
        public var runID: String
        /// The account the orders carry (Account, 1), if one is set.
        public var account: String? = nil
        /// Logons (the first one and every reconnection).
        public var logons: Int
        /// Connections lost while logged on.
        public var disconnections: Int
        /// Execution reports dropped as repeats of an ExecID.
        public var duplicateReports: Int
        /// Session Rejects FillGuard sent for malformed messages.
        public var rejectsSent: Int
        /// Session Rejects of FillGuard's messages from the counterparty.
        public var rejectsReceived: Int
        /// Requests that got no answer in time.
        public var requestTimeouts: Int
        /// This run's orders the broker reported in the final check.
        public var ordersChecked: Int
        /// Order mass status rounds the final check took.
        public var checkRounds: Int
    }

    private func fixJSON(_ fix: FIXSummary, string: (String) -> String, object: ([(String, String)]) -> String) -> String {
        let kinds = OrderOperation.Kind.allCases
        return object([
            ("broker", string("fix")),
            ("symbols", "\(symbols)"),
            ("seconds", string(Self.format(seconds))),
            ("seed", "\(seed)"),
            ("nativeModify", "\(nativeModify)"),
            ("strategy", string(strategy.rawValue)),
            ("flippedCover", string(flippedPositionCover.rawValue)),
            ("fills", "\(fills)"),
            ("fillsApplied", "\(fillsApplied)"),
            ("positionsOpened", "\(positionsOpened)"),
            ("positionsClosed", "\(positionsClosed)"),
            ("brokerOperations", object(kinds.map { ($0.rawValue, "\(operations[$0] ?? 0)") })),
            ("operationsNotSent", "\(operationsNotSent)"),
            ("retries", "\(retries)"),
            ("breakerTrips", "\(breakerTrips)"),
            ("alerts", "\(alerts)"),
            ("alertsByKind", alertsByKindJSON(object)),
            ("alertSamples", "[" + alertSamples.map(string).joined(separator: ",") + "]"),
            ("rejectedInputs", object(InputError.Code.allCases.sorted { $0.rawValue < $1.rawValue }.map { ($0.rawValue, "\(rejected[$0] ?? 0)") })),
            ("corrections", object(ReconciliationCorrection.Kind.allCases.compactMap { kind in corrections[kind].map { (kind.rawValue, "\($0)") } })),
            ("reactionLatencyMicros", object(reaction.jsonFields)),
            ("fix", object([
                ("endpoint", string(fix.endpoint)), ("senderCompID", string(fix.senderCompID)), ("targetCompID", string(fix.targetCompID)),
                ("runID", string(fix.runID)), ("account", fix.account.map(string) ?? "null"), ("logons", "\(fix.logons)"), ("disconnections", "\(fix.disconnections)"),
                ("duplicateReports", "\(fix.duplicateReports)"), ("rejectsSent", "\(fix.rejectsSent)"),
                ("rejectsReceived", "\(fix.rejectsReceived)"), ("requestTimeouts", "\(fix.requestTimeouts)"),
                ("ordersChecked", "\(fix.ordersChecked)"), ("checkRounds", "\(fix.checkRounds)"),
            ])),
            ("invariantViolations", "\(invariantViolations)"),
            ("violations", "[" + (continuousViolations + finalViolations).map(string).joined(separator: ",") + "]"),
            ("interrupted", "\(interrupted)"),
        ] + (journal.map { [journalJSON($0, string: string, object: object)] } ?? []))
    }

    private func fixText(_ fix: FIXSummary) -> String {
        let kinds = OrderOperation.Kind.allCases
        var lines: [String] = []
        lines.append("FillGuard simulation over FIX \(fix.endpoint) (\(fix.senderCompID) -> \(fix.targetCompID)\(fix.account.map { ", account \($0)" } ?? ""), run \(fix.runID)): \(symbols) symbol\(symbols == 1 ? "" : "s"), \(Self.format(seconds)) s, seed \(seed), \(nativeModify ? "native modify (replacing by \(strategy.rawValue))" : "no native modify (\(strategy.rawValue))")\(flippedPositionCover == .bracket ? "" : ", flipped cover \(flippedPositionCover.rawValue)")")
        if interrupted { lines.append("  interrupted: trading stopped early on request, then wound down and checked as usual") }
        lines.append("  fills                 \(fills) received over FIX, \(fillsApplied) applied")
        // A resumed session: FillGuard's memory of closed positions spans every session so far.
        lines.append("  positions             \(positionsOpened) opened, \(positionsClosed) closed" + (journal == nil ? "" : " (all sessions of the journal)"))
        lines.append("  broker operations     " + kinds.map { "\($0.rawValue) \(operations[$0] ?? 0)" }.joined(separator: ", ")
                     + (operationsNotSent == 0 ? "" : " (\(operationsNotSent) of them not sent: the broker unreachable)"))
        lines.append("  retries               \(retries)")
        lines.append("  breaker trips         \(breakerTrips)")
        appendAlerts(to: &lines)
        lines.append("  rejected inputs       " + (rejected.isEmpty ? "0" : rejected.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")))
        lines.append("  corrections           " + (corrections.isEmpty ? "0" : ReconciliationCorrection.Kind.allCases.compactMap { kind in corrections[kind].map { "\(kind.rawValue) \($0)" } }.joined(separator: ", ")))
        lines.append("  FIX session           logons \(fix.logons), disconnections \(fix.disconnections), duplicate reports \(fix.duplicateReports), session rejects sent \(fix.rejectsSent) / received \(fix.rejectsReceived), request timeouts \(fix.requestTimeouts)")
        lines.append("  final check           \(fix.ordersChecked) orders of the run from OrderMassStatus, \(fix.checkRounds) round\(fix.checkRounds == 1 ? "" : "s")")
        lines.append("  reaction (µs)         \(reaction.text)")
        lines.append("  invariantViolations   \(invariantViolations)")
        for violation in (continuousViolations + finalViolations).prefix(20) { lines.append("    - \(violation)") }
        if continuousViolations.count + finalViolations.count > 20 { lines.append("    - ... \(continuousViolations.count + finalViolations.count - 20) more violations (all of them in --json)") }
        if let journal { lines += journalLines(journal) }
        return lines.joined(separator: "\n")
    }

    private func alertsByKindJSON(_ object: ([(String, String)]) -> String) -> String {
        object(Alert.Kind.allCases.compactMap { kind in alertsByKind[kind].map { (kind.rawValue, "\($0)") } })
    }

    /// "alerts 3: operationFailed 2, fillsOverdue 1", then the first ones, one line each.
    private func appendAlerts(to lines: inout [String]) {
        let kinds = Alert.Kind.allCases.compactMap { kind in alertsByKind[kind].map { "\(kind.rawValue) \($0)" } }
        lines.append("  alerts                \(alerts)" + (kinds.isEmpty ? "" : ": " + kinds.joined(separator: ", ")))
        for sample in alertSamples { lines.append("    ! \(sample)") }
        if alerts > alertSamples.count, !alertSamples.isEmpty { lines.append("    ! ... \(alerts - alertSamples.count) more") }
    }

    /// What the journal did in a session.
    public struct JournalSummary: Sendable {
        /// What recovery found at the start.
        public var recovery: RecoveryReport
        /// What the journal wrote during the session.
        public var written: Journal.Statistics
        /// Market time simulated while the manager was down (since the state file's last clock).
        public var downtime: Duration
        /// Why the journal failed during the session (FillGuard then stops applying events and
        /// trading ends); nil when it did not.
        public var failure: String? = nil
    }

    /// The violation a journal that failed while a clean stop wrote its snapshots is reported as
    /// (by `simulate` and `recover` alike).
    static func journalFailedWhileStopping(_ failure: JournalError) -> String {
        "the journal failed while stopping (\(failure)): the stop's snapshots were not all written, so the next start replays records instead (nothing is lost)"
    }

    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let millis = attoseconds / 1_000_000_000_000_000
        let padded = String(millis)
        return "\(seconds)." + String(repeating: "0", count: 3 - padded.count) + padded
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
