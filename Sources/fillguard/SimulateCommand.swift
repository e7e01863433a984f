import ArgumentParser
import FillGuard
import FillGuardCore
import FillGuardFIX
import FillGuardSimulator
import FillGuardSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `fillguard simulate`: a multi-symbol session against the simulated exchange (or a FIX
/// endpoint with `--broker fix`), with a report.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run a multi-symbol trading session against the simulated exchange and report on it.",
        discussion: """
            Exits 1 if any invariant (net = sum of unique fills; protective orders = |net|) was violated.
            With --broker fix the session trades with a FIX 4.4 endpoint (for example tools/fix-peer with \
            --auto-market SEED): prices from its market data, ground truth from its order mass status. \
            --fault-rate and --latency-ms set up the simulated exchange (refused with --broker fix). --journal over FIX needs a \
            session store (--fix-store DIR or FileStorePath): a restart recovers the journal, has the counterparty \
            resend what it sent meanwhile, reconciles with the broker's order statuses and carries on; \
            `fillguard recover --broker fix` takes such a journal too.
            """)

    @Option(parsing: .unconditional, help: "Symbols traded in parallel.")
    var symbols = 20

    @Option(parsing: .unconditional, help: "Seconds of trading (default 10).", transform: { try PlainNumber.parse($0, option: "--duration") })
    var duration = 10.0

    @Option(parsing: .unconditional, help: "Seed for prices, sizes and faults.")
    var seed: UInt64 = 1

    @Option(parsing: .unconditional, help: "Probability that a broker request fails; duplicate and reordered reports at a quarter of it (default 0.02; the simulated exchange only).",
            transform: { try PlainNumber.parse($0, option: "--fault-rate") })
    var faultRate: Double?

    @Flag(help: "The exchange has no native modify: protective orders are resized by replacement.")
    var noModify = false

    @Option(help: "How a protective order is replaced, cancelThenCreate or createThenCancel: at every resize without native modify, and with it for an order that must be replaced anyway (its cancel timed out).")
    var strategy = "cancelThenCreate"

    @Option(help: "How a position a late fill flipped against its bracket is covered: bracket (its stop-loss and take-profit, as rules 2 and 7 say) or stopLossOnly (its stop-loss alone: never a double exit).")
    var flippedCover = "bracket"

    @Option(parsing: .unconditional, help: "Broker acknowledgement latency range in milliseconds, A-B (or A alone: A-A) (default 0.2-1; the simulated exchange only).")
    var latencyMs: String?

    @Option(help: "Write-ahead journal (SQLite file). An existing journal is recovered first and the session carries on; the simulated exchange keeps its state next to it (PATH.exchange). Over FIX it needs --fix-store.")
    var journal: String?

    @Option(help: "With --journal: its durability, fsync (survives power loss) or off (survives a killed process). (default: fsync)")
    var durability: String?

    @Option(parsing: .unconditional, help: "With --journal: records per symbol between journal snapshots. (default: 1000)")
    var snapshotInterval: Int?

    @Option(help: "With --journal: what recovering it does with entries and scale-ins the broker never got (never sent, waiting out a retry, or sent and not there): send (once reconciliation ends) or refuse (never sent late, at another market); ones the broker cannot be asked about are sent either way. (default: send)")
    var unsentEntries: String?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "The broker: simulated (the in-process exchange) or fix (a FIX 4.4 endpoint).")
    var broker = "simulated"

    @Option(parsing: .unconditional, help: "Dedicated threads for the lanes (0: Swift's thread pool).")
    var runnerThreads = 0

    @Option(parsing: .unconditional, help: "With --runner-threads: processors to bind them to, comma separated (default: none).")
    var runnerProcessors = ""

    @Option(parsing: .unconditional, help: "With --runner-threads: microseconds an idle runner thread polls before it sleeps.")
    var runnerSpinUs = 0

    @Option(help: "Write the manager's metrics to PATH in Prometheus's text format: every second while the session runs, and at its end (node_exporter's textfile collector reads such a file).")
    var metricsFile: String?

    @OptionGroup var fix: FIXCommandOptions

    /// Closes the journal of a refused run, and removes the files this run created (`created`),
    /// only while it holds the journal's writer lock and the journal holds no records: a file
    /// another run created meanwhile, or one that existed before (a `-wal` left beside a moved
    /// database file holds a whole session), is never removed.
    private static func discard(_ journal: Journal?, store: SQLiteJournalStore?, created: [String]) async {
        if let store, !created.isEmpty, (try? store.holdsRecords()) == false {
            // Removed while the lock is held: a run opening the path meanwhile gets a new file.
            for file in created { unlink(file) }
        }
        await journal?.close()
        if journal == nil { await store?.close() }
    }

    private static func removeNewStore(_ path: String) { removeNewFIXStore(path) }

    /// The journal's files that do not exist yet (those this run would create).
    private static func missingFiles(of path: String) -> [String] {
        [path, path + "-wal", path + "-shm"].filter { access($0, F_OK) != 0 }
    }

    func validate() throws {
        guard symbols >= 1, symbols <= 100_000 else { throw ValidationError("--symbols must be between 1 and 100000") }
        guard duration >= 0.001, duration <= 86_400 else { throw ValidationError("--duration must be a number of seconds from 0.001 to 86400 (a day)") }
        guard (0...1).contains(faultRate ?? 0.02) else { throw ValidationError("--fault-rate must be between 0 and 1") }
        guard SymbolStateMachine.ReplaceStrategy(rawValue: strategy) != nil else {
            throw ValidationError("--strategy must be cancelThenCreate or createThenCancel")
        }
        guard FlippedPositionCover(rawValue: flippedCover) != nil else {
            throw ValidationError("--flipped-cover must be bracket or stopLossOnly")
        }
        guard parsedLatency != nil else { throw ValidationError("--latency-ms must look like 0.2-1: A-B milliseconds (or A alone), 0 <= A <= B <= 60000") }
        guard journal?.isEmpty != true else { throw ValidationError("--journal needs a file path") }
        guard metricsFile?.isEmpty != true else { throw ValidationError("--metrics-file needs a file path") }
        if let metricsFile, let journal, ["", "-wal", "-shm", "-journal", ".exchange"].contains(where: { journal + $0 == metricsFile }) {
            throw ValidationError("--metrics-file \(metricsFile) would overwrite the journal's files: give another path")
        }
        guard journal != nil || (durability == nil && snapshotInterval == nil) else {
            throw ValidationError("--durability and --snapshot-interval set up the journal: they need --journal PATH")
        }
        guard journal != nil || unsentEntries == nil else {
            throw ValidationError("--unsent-entries says how a journal is recovered: it needs --journal PATH")
        }
        guard UnsentEntryPolicy(rawValue: unsentEntries ?? "send") != nil else { throw ValidationError("--unsent-entries must be send or refuse") }
        guard JournalDurability(rawValue: durability ?? "fsync") != nil else { throw ValidationError("--durability must be fsync or off") }
        guard (snapshotInterval ?? 1) >= 1 else { throw ValidationError("--snapshot-interval must be at least 1") }
        guard broker == "simulated" || broker == "fix" else { throw ValidationError("--broker must be simulated or fix") }
        guard (0...256).contains(runnerThreads) else { throw ValidationError("--runner-threads must be between 0 and 256") }
        guard runnerSpinUs >= 0, runnerSpinUs <= 1_000_000 else { throw ValidationError("--runner-spin-us must be between 0 and 1000000") }
        guard let processors = parsedProcessors else { throw ValidationError("--runner-processors must be processor numbers below 1024, comma separated") }
        if let repeated = processors.first(where: { processor in processors.filter { $0 == processor }.count > 1 }) {
            throw ValidationError("--runner-processors names processor \(repeated) more than once")
        }
        guard runnerThreads > 0 || (runnerProcessors.isEmpty && runnerSpinUs == 0) else {
            throw ValidationError("--runner-processors and --runner-spin-us need --runner-threads 1 or more")
        }
        if broker == "fix", faultRate != nil || latencyMs != nil {
            throw ValidationError("--fault-rate and --latency-ms set up the simulated exchange: they do not apply with --broker fix")
        }
        if broker == "simulated" {
            guard !fix.given else { throw ValidationError("the --fix-* options need --broker fix") }
            return
        }
        try fix.validateForFIX()
        if journal != nil, try fix.settings().storePath == nil {
            // Without a store the sequence numbers start afresh at every run: what the counterparty
            // sent while FillGuard was down is never resent, so a restart could not recover it.
            throw ValidationError("--journal with --broker fix needs a FIX session store (--fix-store DIR, or FileStorePath in --fix-config): "
                                  + "without one a restart cannot have the counterparty resend the reports sent while FillGuard was down")
        }
    }

    /// The processors named by --runner-processors (empty when not given); nil if malformed.
    private var parsedProcessors: [Int]? {
        if runnerProcessors.isEmpty { return [] }
        let numbers = runnerProcessors.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard numbers.allSatisfy({ ($0 ?? -1) >= 0 && ($0 ?? 1_024) < 1_024 }) else { return nil }
        return numbers.compactMap { $0 }
    }

    /// The runner threads the options ask for (nil: the pool). The caller shuts them down.
    private func makeRunnerThreads() -> RunnerThreads? {
        guard runnerThreads > 0 else { return nil }
        let threads = RunnerThreads(count: runnerThreads, processors: parsedProcessors ?? [], spin: .microseconds(runnerSpinUs),
                                    name: "fillguard-runner")
        if !threads.processors.isEmpty {
            let allowed = ProcessorAffinity.allowed()
            let unusable = threads.processors.filter { !allowed.contains($0) }
            if !unusable.isEmpty, !allowed.isEmpty {
                writeToStandardError("fillguard: --runner-processors: this process may not use processor\(unusable.count == 1 ? "" : "s") \(unusable.map(String.init).joined(separator: ",")) (it may use \(allowed.map(String.init).joined(separator: ","))); the threads run on the others\n")
            }
            threads.waitUntilStarted()
            if threads.threadsBound < threads.count {
                writeToStandardError("fillguard: only \(threads.threadsBound) of \(threads.count) runner threads could be bound to processors \(runnerProcessors); the others run unbound\n")
            }
        }
        return threads
    }

    private var parsedLatency: ClosedRange<Duration>? {
        // "A-B" or "A", both non-negative: a leading or doubled '-' is not a range.
        let latencyMs = latencyMs ?? "0.2-1"
        guard !latencyMs.hasPrefix("-"), !latencyMs.contains("--"), !latencyMs.hasSuffix("-") else { return nil }
        let parts = latencyMs.split(separator: "-").map { try? PlainNumber.parse(String($0), option: "--latency-ms") }
        // At most a minute: a broker that takes longer is down, not slow (and the session would
        // wait that long for every answer while it winds down).
        guard (1...2).contains(parts.count), let low = parts.first ?? nil, let high = parts.last ?? nil, low >= 0, high >= low,
              high <= 60_000 else { return nil }
        return .microseconds(Int64(low * 1000)) ... .microseconds(Int64(high * 1000))
    }

    /// The metrics file asked for, written once now (empty) to find out early that it can be.
    private func openMetricsFile() throws -> MetricsFile? {
        guard let metricsFile else { return nil }
        // The journal's files, under any spelling, are never the metrics file.
        let journalFiles = journal.map { path in ["", "-wal", "-shm", "-journal", ".exchange"].map { path + $0 } } ?? []
        do {
            // Nor are the FIX session store's files (its lock is an empty file).
            let storeDirectories = broker == "fix" ? [(try? fix.settings())?.storePath].compactMap { $0 } : []
            let file = try MetricsFile(path: metricsFile, sparing: journalFiles, sparingDirectories: storeDirectories)
            try file.write()
            return file
        } catch {
            writeToStandardError("fillguard: --metrics-file: \(error)\n")
            throw ExitCode(2)
        }
    }

    func run() async throws {
        let metrics = try openMetricsFile()
        if broker == "fix" {
            try await runOverFIX(metrics: metrics)
            return
        }
        var options = SimulationOptions()
        options.metricsFactory = metrics?.factory
        options.symbols = symbols
        options.duration = .milliseconds(Int64(duration * 1000))
        options.seed = seed
        options.faultRate = faultRate ?? 0.02
        options.nativeModify = !noModify
        options.strategy = SymbolStateMachine.ReplaceStrategy(rawValue: strategy) ?? .cancelThenCreate
        options.flippedPositionCover = FlippedPositionCover(rawValue: flippedCover) ?? .bracket
        options.unsentEntries = UnsentEntryPolicy(rawValue: unsentEntries ?? "send") ?? .send
        options.latency = parsedLatency ?? options.latency
        let runners = makeRunnerThreads()
        defer { runners?.shutdown() }
        options.runnerThreads = runners
        let interrupts = InterruptHandler()
        options.stop = interrupts.stop
        var settingsMismatch: String?
        // A journal this run creates is removed again if the run is refused before it starts.
        let created = journal.map(Self.missingFiles(of:)) ?? []
        var openedStore: SQLiteJournalStore?
        if let journal {
            do {
                let store = try SQLiteJournalStore(path: journal, durability: JournalDurability(rawValue: durability ?? "fsync") ?? .fsync)
                openedStore = store
                options.journal = Journal(store: store, snapshotInterval: snapshotInterval ?? 1_000)
                options.exchangeStatePath = journal + ".exchange"
                options.exchangeSession = ExchangeSession(journalID: store.identity, nativeModify: !noModify, strategy: options.strategy.rawValue)
                let holdsSession = try store.holdsRecords()
                options.exchangeStateRequired = holdsSession
                var exchangeFile = stat()
                if stat(journal + ".exchange", &exchangeFile) == 0, exchangeFile.st_mode & S_IFMT == S_IFDIR {
                    // Where the exchange keeps its state, a directory is in the way.
                    settingsMismatch = "\(journal).exchange is a directory: the simulated exchange keeps its state in a file there (move the directory away)"
                } else if !holdsSession, let size = fileSize(journal + ".exchange"), size > 0,
                          !ExchangeSession.isUntradedState(at: journal + ".exchange", of: store.identity) {
                    // A new journal's exchange state cannot exist yet: this one is another session's.
                    // Refused before the journal records anything of this session. (One naming
                    // this journal and holding no order is its own: a session killed before it traded.)
                    settingsMismatch = "the journal \(journal) is new, but \(journal).exchange holds an exchange state: another session's, or the session of a journal moved aside or lost (a new journal is a new session: move \(journal).exchange aside too to start afresh)"
                } else {
                    settingsMismatch = try JournalSettings.mismatch(in: store, nativeModify: !noModify, strategy: options.strategy.rawValue,
                                                                     flippedCover: options.flippedPositionCover.rawValue, record: !holdsSession)
                }
                if settingsMismatch == nil, holdsSession, access(journal + ".exchange", F_OK) != 0 {
                    // The simulated exchange's truth (its orders and fills) is gone: a new, empty
                    // exchange would contradict every open position and order in the journal.
                    settingsMismatch = "the journal holds a session, but the simulated exchange's state next to it (\(journal).exchange) is missing; "
                        + "the session cannot go on against a new, empty exchange (`fillguard recover --journal \(journal)` still rebuilds and shows its state)"
                }
            } catch {
                writeToStandardError("fillguard: \(error)\n")
                await Self.discard(options.journal, store: openedStore, created: created)
                throw ExitCode(2)
            }
        }
        if let settingsMismatch {
            writeToStandardError("fillguard: \(settingsMismatch)\n")
            await Self.discard(options.journal, store: openedStore, created: created)
            throw ExitCode(2)
        }
        let showProgress = isatty(STDERR_FILENO) == 1
        let session = SimulationSession(options: options)
        let progressReport = Self.progressReport(total: duration, showProgress: showProgress)
        let report: SimulationReport
        let metricsWriter = metrics?.keepWriting()
        do {
            report = try await session.run(progress: showProgress ? progressReport : nil)
            // The session's last counts, whichever way it ended.
            if let metrics, let metricsWriter { await metrics.finish(metricsWriter) }
        } catch {
            if let metrics, let metricsWriter { await metrics.finish(metricsWriter) }
            writeToStandardError((showProgress ? "\n" : "") + "fillguard: \(error)\n")
            throw ExitCode(2)
        }
        if showProgress { writeToStandardError("\n") }
        try printResult(json ? report.json : report.text)
        withExtendedLifetime(interrupts) {}
        if report.invariantViolations > 0 { throw ExitCode(1) }
        if report.interrupted { throw ExitCode(130) }
    }
}

extension SimulateCommand {
    /// What the session reports as it runs: on a terminal (`showProgress`), a progress line
    /// rewritten in place (the trading clock and counts, then how long the wind-down may wait for
    /// the broker); on a terminal or not, a line when the broker's session goes down and when it
    /// is up again.
    static func progressReport(total: Double, showProgress: Bool) -> @Sendable (SimulationProgress) -> Void {
        let lastDown = Mutex<String?>(nil)
        return { progress in
            let change: String? = lastDown.withLock { last in
                defer { last = progress.brokerDown }
                switch (last, progress.brokerDown) {
                case (nil, let reason?): return "the FIX session is down (\(reason)); reconnecting"
                case (let before?, let reason?) where before != reason: return "the FIX session is still down (\(reason)); reconnecting"
                case (_?, nil): return "the FIX session is up again"
                default: return nil
                }
            }
            if let change { writeToStandardError((showProgress ? "\n" : "") + "fillguard: \(change)\n") }
            guard showProgress else { return }
            let (seconds, attoseconds) = progress.elapsed.components
            let tenths = attoseconds / 100_000_000_000_000_000
            var line = "\r[\(seconds).\(tenths)s/\(total)s] fills \(progress.fills)"
            line += "  open \(progress.openPositions)  closed \(progress.closedPositions)  operations \(progress.operations)   "
            if let within = progress.settlingWithin {
                let (whole, fraction) = within.components
                line += "\n  trading ended; settling with the broker (at most \(Double(whole) + Double(fraction) / 1e18) s)"
            }
            writeToStandardError(line)
        }
    }

    /// The session against a FIX endpoint.
    private func runOverFIX(metrics: MetricsFile?) async throws {
        var options = SimulationOptions()
        options.metricsFactory = metrics?.factory
        options.symbols = symbols
        options.duration = .milliseconds(Int64(duration * 1000))
        options.seed = seed
        options.strategy = SymbolStateMachine.ReplaceStrategy(rawValue: strategy) ?? .cancelThenCreate
        options.flippedPositionCover = FlippedPositionCover(rawValue: flippedCover) ?? .bracket
        let runners = makeRunnerThreads()
        defer { runners?.shutdown() }
        options.runnerThreads = runners
        let interrupts = InterruptHandler()
        options.stop = interrupts.stop
        var fixOptions = FIXSimulationOptions(settings: try fix.settings())
        fixOptions.nativeModify = !noModify
        fixOptions.settleTimeout = fix.settleTimeout
        if journal != nil, fixOptions.settings.storeSync == nil {
            // A journal that survives a power loss has a store that does too: else a fill the
            // store recorded as received, but lost, would be lost for good.
            fixOptions.settings.storeSync = (JournalDurability(rawValue: durability ?? "fsync") ?? .fsync) == .fsync
        }
        // A journal this run creates is removed again if the run is refused, or cannot log on,
        // before it records anything; so is a store it creates, if it never logs on.
        let created = journal.map(Self.missingFiles(of:)) ?? []
        let newStore = fixOptions.settings.storePath.flatMap { access($0, F_OK) != 0 ? $0 : nil }
        var openedStore: SQLiteJournalStore?
        if let journal {
            var refusal: String?
            do {
                let store = try SQLiteJournalStore(path: journal, durability: JournalDurability(rawValue: durability ?? "fsync") ?? .fsync)
                openedStore = store
                options.journal = Journal(store: store, snapshotInterval: snapshotInterval ?? 1_000)
                let holdsSession = try store.holdsRecords()
                if access(journal + ".exchange", F_OK) == 0 {
                    refusal = "\(journal).exchange holds a simulated exchange's state: the journal is a session with the simulated exchange, "
                        + "whose orders are not at a FIX endpoint; use it without --broker fix"
                } else if let mismatch = try JournalSettings.mismatch(in: store, nativeModify: !noModify, strategy: options.strategy.rawValue,
                                                                      flippedCover: options.flippedPositionCover.rawValue, broker: "fix",
                                                                      record: !holdsSession) {
                    refusal = mismatch
                } else {
                    let session = fixOptions.settings.senderCompID + "->" + fixOptions.settings.targetCompID
                    refusal = try JournalSettings.fixSessionMismatch(in: store, session: session, record: !holdsSession)
                    if refusal == nil {
                        let (account, accountRefusal) = try JournalSettings.fixAccount(in: store, given: fixOptions.settings.account, record: !holdsSession)
                        fixOptions.settings.account = account
                        refusal = accountRefusal
                    }
                }
                if refusal == nil, holdsSession, fixOptions.settings.resetsOnLogon {
                    writeToStandardError("warning: the FIX session resets its sequence numbers at Logon (ResetOnLogon=Y): reports sent while FillGuard was down are not resent; fills only the broker's order statuses show are reported, not applied\n")
                }
            } catch {
                refusal = "\(error)"
            }
            if let refusal {
                writeToStandardError("fillguard: \(refusal)\n")
                await Self.discard(options.journal, store: openedStore, created: created)
                throw ExitCode(2)
            }
        }
        let showProgress = isatty(STDERR_FILENO) == 1
        let progressReport = Self.progressReport(total: duration, showProgress: showProgress)
        let report: SimulationReport
        let metricsWriter = metrics?.keepWriting()
        do {
            report = try await FIXSimulationSession(options: options, fix: fixOptions).run(progress: progressReport)
            // The session's last counts, whichever way it ended.
            if let metrics, let metricsWriter { await metrics.finish(metricsWriter) }
        } catch {
            if let metrics, let metricsWriter { await metrics.finish(metricsWriter) }
            writeToStandardError((showProgress ? "\n" : "") + "fillguard: \(error)\n")
            // Nothing was recorded when the session could not log on: a journal it created goes again.
            await Self.discard(options.journal, store: openedStore, created: created)
            if let newStore, (error as? FIXSimulationError)?.beforeLogon == true { Self.removeNewStore(newStore) }
            throw ExitCode((error as? FIXSimulationError)?.interrupted == true ? 130 : 2)
        }
        if showProgress { writeToStandardError("\n") }
        try printResult(json ? report.json : report.text)
        withExtendedLifetime(interrupts) {}
        if report.invariantViolations > 0 { throw ExitCode(1) }
        if report.interrupted { throw ExitCode(130) }
    }
}

/// Reads a whole text file; nil if it cannot be read.
func readTextFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count > 0 { bytes.append(contentsOf: buffer[0..<count]) }
        if count < buffer.count { break }
    }
    if ferror(file) != 0 { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

/// Removes a FIX store directory a run created and never logged on with: its files (the
/// sequence numbers, the Logon it sent, no fills) and the directory itself.
func removeNewFIXStore(_ path: String) {
    for file in ["seqnums", "messages", "executions", "executions.old", "lock"] { unlink(path + "/" + file) }
    rmdir(path)
}
