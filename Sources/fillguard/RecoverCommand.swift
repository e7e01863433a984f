import ArgumentParser
import FillGuard
import FillGuardCore
import FillGuardFIX
import FillGuardSimulator
import FillGuardSQLite
import Foundation
import Logging

/// `fillguard recover --journal PATH`: restart from a journal, reconcile, print the state.
struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Rebuild the state a journal holds, reconcile it with the broker (simulated or FIX), and print it in the replay shape.",
        discussion: """
            The broker is the simulated exchange saved next to the journal (PATH.exchange, as written by \
            `fillguard simulate --journal PATH`); without it the state is rebuilt but not reconciled. With \
            --broker fix it is a FIX 4.4 endpoint (the --fix-* options of `simulate --broker fix`): pass the \
            session store (--fix-store or FileStorePath) the journal's session used, so the counterparty resends \
            the execution reports sent while FillGuard was down; the check then compares FillGuard with the \
            broker's order mass status for the journal's orders. \
            A symbol whose net at the broker differs from the journal's in a way FillGuard's orders could \
            worsen (the broker flat, on the other side or holding less; or FillGuard flat beside a broker position) is held: nothing is sent for it, and \
            a `held:` line names it. Once a person has looked at the account, --release SYMBOL sends its work \
            as the journal's state says. \
            Corrections and repairs go to standard error. Exit codes: 0 recovered and consistent (or, with no \
            exchange state to reconcile with, rebuilt only, which standard error says), 1 a check \
            against the broker's ground truth or an invariant failed, or a --release named a symbol not held, 2 unusable arguments, an unreachable \
            endpoint or an unreadable, corrupted or newer journal.
            """)

    @Option(help: "The journal (SQLite file) to recover.")
    var journal: String

    @Option(help: "The simulated exchange's state file (default: JOURNAL.exchange).")
    var exchangeState: String?

    @Option(parsing: .unconditional, help: "Seed of the simulated exchange. Recovery runs it without faults and with prices still, so the result does not depend on it; any value recovers any session.")
    var seed: UInt64 = 1

    @Flag(help: "The exchange has no native modify.")
    var noModify = false

    @Option(help: "Replacement without native modify: cancelThenCreate or createThenCancel.")
    var strategy = "cancelThenCreate"

    @Option(help: "How a position flipped against its bracket is covered, as the journal's session did: bracket or stopLossOnly.")
    var flippedCover = "bracket"

    @Option(help: "Entries and scale-ins the broker never got (never sent, waiting out a retry, or sent and not there): send (once reconciliation ends) or refuse (never sent late, at another market); ones the broker cannot be asked about are sent either way.")
    var unsentEntries = "send"

    @Flag(help: "Print the state as JSON (the replay shape).")
    var json = false

    @Option(help: "The broker: simulated (the exchange state saved next to the journal) or fix (a FIX 4.4 endpoint).")
    var broker = "simulated"

    @Option(name: .customLong("release"),
            help: ArgumentHelp("A symbol recovery holds after a position mismatch whose work is to be sent anyway, as the journal's state says (repeat for several). Look at the broker's account first.",
                               valueName: "symbol"))
    var release: [String] = []

    @OptionGroup var fix: FIXCommandOptions

    func validate() throws {
        guard SymbolStateMachine.ReplaceStrategy(rawValue: strategy) != nil else {
            throw ValidationError("--strategy must be cancelThenCreate or createThenCancel")
        }
        guard FlippedPositionCover(rawValue: flippedCover) != nil else {
            throw ValidationError("--flipped-cover must be bracket or stopLossOnly")
        }
        guard UnsentEntryPolicy(rawValue: unsentEntries) != nil else {
            throw ValidationError("--unsent-entries must be send or refuse")
        }
        for symbol in release where symbol.allSatisfy(\.isWhitespace) {
            throw ValidationError("--release needs a symbol, not '\(symbol)'")
        }
        guard broker == "simulated" || broker == "fix" else { throw ValidationError("--broker must be simulated or fix") }
        if broker == "simulated" {
            guard !fix.given else { throw ValidationError("the --fix-* options need --broker fix") }
            return
        }
        guard exchangeState == nil else { throw ValidationError("--exchange-state is for the simulated broker only") }
        try fix.validateForFIX()
    }

    func run() async throws {
        // (A -wal without its file is left to the store, which says what it holds.)
        guard FileManager.default.fileExists(atPath: journal) || (fileSize(journal + "-wal") ?? 0) > 0 else {
            writeToStandardError("fillguard: no journal at '\(journal)'\n")
            throw ExitCode(2)
        }
        // An empty file is no journal: opening it would create one, and recover nothing. (One
        // whose -wal holds committed writes is left to the store, which says what the log holds.)
        guard fileSize(journal) != 0 || SQLiteJournalStore.logHoldsCommits(besideEmptyFile: journal) else {
            writeToStandardError("fillguard: '\(journal)' is empty, not a journal\n")
            throw ExitCode(2)
        }
        let statePath = exchangeState ?? journal + ".exchange"
        let overFIX = broker == "fix"
        var isDirectory: ObjCBool = false
        let stateExists = FileManager.default.fileExists(atPath: statePath, isDirectory: &isDirectory)
        if let exchangeState, !overFIX, !stateExists || isDirectory.boolValue {
            // Named explicitly: a mistyped path must not silently skip the reconciliation.
            writeToStandardError("fillguard: --exchange-state '\(exchangeState)' \(stateExists ? "is a directory, not a state file" : "does not exist")\n")
            throw ExitCode(2)
        }
        if !overFIX, stateExists, !isDirectory.boolValue, fileSize(statePath) == 0 {
            // Reconciling against an exchange that holds nothing would "correct" every position.
            writeToStandardError("fillguard: the exchange state '\(statePath)' is empty\n")
            throw ExitCode(2)
        }
        if overFIX, stateExists {
            // A journal whose settings were never recorded (an older `simulate`, or damaged) still
            // says where its orders are by the exchange state beside it.
            writeToStandardError("fillguard: '\(statePath)' holds a simulated exchange's state: the journal's orders are at the simulated exchange, not at a FIX endpoint; "
                                 + "reconciling it there would place them on that market. Recover it without --broker fix\n")
            throw ExitCode(2)
        }
        let hasExchange = overFIX || stateExists
        var logger = Logger(label: "fillguard.recover")
        logger.logLevel = .critical
        let replaceStrategy = SymbolStateMachine.ReplaceStrategy(rawValue: strategy) ?? .cancelThenCreate
        let cover = FlippedPositionCover(rawValue: flippedCover) ?? .bracket
        let releasing = Set(release.map { Symbol($0) })
        let unsentEntryPolicy = UnsentEntryPolicy(rawValue: unsentEntries) ?? .send
        let outcome: RecoverySession.Outcome
        // A FIX store directory this run would create: removed again if it never logs on.
        var newStore: String?
        if overFIX, let settings = try? fix.settings(), let path = settings.storePath, access(path, F_OK) != 0 { newStore = path }
        do {
            let store = try SQLiteJournalStore(path: journal, durability: .fsync, mode: .existingJournal)
            if let mismatch = try JournalSettings.mismatch(in: store, nativeModify: !noModify, strategy: replaceStrategy.rawValue,
                                                           flippedCover: flippedCover, broker: overFIX ? "fix" : "simulated", record: false) {
                throw SettingsMismatch(description: mismatch)
            }
            if overFIX {
                var settings = try fix.settings()
                // The journal is written with fsync here: the store keeps up (see simulate).
                if settings.storeSync == nil { settings.storeSync = true }
                if let mismatch = try JournalSettings.fixSessionMismatch(in: store, session: settings.senderCompID + "->" + settings.targetCompID,
                                                                         record: false) {
                    throw SettingsMismatch(description: mismatch)
                }
                let (account, accountRefusal) = try JournalSettings.fixAccount(in: store, given: settings.account, record: false)
                if let accountRefusal { throw SettingsMismatch(description: accountRefusal) }
                settings.account = account
                var options = FIXSimulationOptions(settings: settings)
                options.nativeModify = !noModify
                options.settleTimeout = fix.settleTimeout
                if options.settings.storePath != nil, options.settings.resetsOnLogon {
                    writeToStandardError("warning: the FIX session resets its sequence numbers at Logon (ResetOnLogon=Y): reports sent while FillGuard was down are not resent; fills only the broker's order statuses show are reported, not applied\n")
                }
                if options.settings.storePath == nil {
                    if try store.setting("fixSession") != nil {
                        // The session `simulate --broker fix --journal` ran kept a store: starting
                        // afresh would reset the counterparty's numbering and leave that store behind it.
                        throw SettingsMismatch(description: "the journal's session kept a FIX session store: give it (--fix-store DIR, or FileStorePath in --fix-config); "
                                               + "without it the Logon resets the sequence numbers, the reports sent while FillGuard was down are not resent, and that store no longer matches the counterparty")
                    }
                    writeToStandardError("warning: no FIX session store (--fix-store): the session starts afresh, so reports sent while FillGuard was down cannot be resent; fills only the broker's order statuses show are reported, not applied\n")
                }
                var session = FIXRecoverySession(journal: Journal(store: store), fix: options, strategy: replaceStrategy)
                session.flippedPositionCover = cover
                session.unsentEntries = unsentEntryPolicy
                session.release = releasing
                outcome = try await session.run(logger: logger)
            } else {
                var session = RecoverySession(journal: Journal(store: store), exchangeStatePath: hasExchange ? statePath : nil, seed: seed,
                                              nativeModify: !noModify, strategy: replaceStrategy, journalID: store.identity)
                session.flippedPositionCover = cover
                session.unsentEntries = unsentEntryPolicy
                session.release = releasing
                outcome = try await session.run(logger: logger)
            }
        } catch {
            writeToStandardError("fillguard: cannot recover: \(error)\n")
            if let newStore, case FIXRecoveryError.broker = error { removeNewFIXStore(newStore) }
            throw ExitCode(2)
        }
        let recovery = outcome.recovery
        let open = outcome.state.positions.filter { $0.status == .open }.count
        let pending = outcome.state.positions.filter { $0.status == .pending }.count
        writeToStandardError("recovered \(recovery.positions) positions (\(open) open\(pending > 0 ? ", \(pending) pending" : "")) on \(recovery.symbols) symbols from \(recovery.recordsReplayed) records and \(recovery.snapshotsLoaded) snapshots in \(recovery.rebuildDuration.formatted)\n")
        if !hasExchange { writeToStandardError("no exchange state at '\(statePath)': not reconciled\n") }
        for notice in recovery.notices { writeToStandardError("journal repaired: \(notice)\n") }
        for correction in recovery.corrections { writeToStandardError("corrected: \(correction)\n") }
        for symbol in recovery.heldSymbols {
            if releasing.contains(symbol) {
                writeToStandardError("released: \(symbol): its work was sent as the journal's state says (--release)\n")
            } else {
                writeToStandardError("held: \(symbol): nothing is sent for it until a person has looked at the broker's account; "
                                     + "recover again with --release \(symbol) to send its work as the journal's state says\n")
            }
        }
        for alert in outcome.alerts { writeToStandardError("alert: \(alert)\n") }
        for symbol in outcome.notHeld {
            writeToStandardError("fillguard: --release \(symbol): this recovery did not hold \(symbol); nothing released\n")
        }
        try printResult(json ? outcome.state.json : outcome.state.text)
        if !outcome.problems.isEmpty {
            for problem in outcome.problems { writeToStandardError("check failed: \(problem)\n") }
            throw ExitCode(1)
        }
        if !outcome.notHeld.isEmpty { throw ExitCode(1) }
    }
}

extension Duration {
    /// "12.3 ms".
    var formatted: String {
        let (seconds, attoseconds) = components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return "\(micros / 1000).\(micros % 1000 / 100) ms"
    }
}

/// The size of a file in bytes (nil if it cannot be read).
func fileSize(_ path: String) -> Int? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
}

/// Recovery was asked for other replacement settings than the journal's session used.
private struct SettingsMismatch: Error, CustomStringConvertible {
    /// Which setting differs.
    var description: String
}
