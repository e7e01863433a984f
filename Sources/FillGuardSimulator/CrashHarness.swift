#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FillGuard
import Foundation
import Synchronization

/// Kills `fillguard simulate --journal` with SIGKILL at random instants, restarts it, and after
/// every kill checks with `fillguard recover` that nothing was lost or counted twice and every
/// open position is protected at the exchange. Every few kills it also tears the journal's last
/// record, as a crash in the middle of a write would.
public struct CrashHarness: Sendable {
    /// The environment variable through which the harness gives its sessions its process id: a
    /// `fillguard` that finds it set ends when that process is no longer its parent.
    public static let parentVariable = "FILLGUARD_EXIT_WITH_PARENT"

    /// Kills the sessions (and checks) running now, and starts none after, and returns once none
    /// of them can write any more (dead, or after 2 s): for an interrupted harness, before its
    /// directory is removed (a session still writing its journal there, or the next one
    /// starting, would leave files behind). The harness's thread that would start the next one
    /// waits instead, for the process's exit.
    public static func killRunningSessions() {
        let pids = Child.running.withLock { running in
            running.stopped = true
            return running.pids
        }
        for pid in pids { _ = Glibc.kill(pid, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(2)
        for pid in pids {
            while Child.isAlive(pid), ContinuousClock.now < deadline { usleep(1_000) }
        }
    }

    /// What a run found.
    public struct Summary: Sendable {
        /// Kill points exercised.
        public var kills = 0
        /// Kills followed by a torn journal tail.
        public var tornTails = 0
        /// Recoveries that repaired a torn tail (reported it).
        public var tornTailsRepaired = 0
        /// Recoveries that passed every check.
        public var cleanRecoveries = 0
        /// Fills at the exchange not booked, or booked twice, over all checks.
        public var fillProblems = 0
        /// Open positions not exactly protected at the exchange after reconciliation.
        public var protectionProblems = 0
        /// Orders duplicated at the exchange (two live stops or targets for one position).
        public var duplicateOrders = 0
        /// Recoveries that failed outright (exit 2), with their message.
        public var failures: [String] = []
        /// Every failed check, with the kill point it followed.
        public var problems: [String] = []
        /// Corrections reconciliation made over all restarts.
        public var corrections = 0
        /// Fills made at the exchange over the whole run.
        public var fills = 0
        /// Kills that came before the session's journal existed or held its tables (it was
        /// being created): nothing was recorded, so nothing is recovered; the next session
        /// creates it.
        public var killedBeforeTheJournal = 0

        /// An empty summary, before the first kill.
        public init() {}

        /// True when every recovery passed every check.
        public var passed: Bool { kills > 0 && failures.isEmpty && problems.isEmpty }

        /// One line per figure, for a person.
        public var text: String {
            """
            kill points              \(kills) (torn tail after \(tornTails), repaired \(tornTailsRepaired))
            clean recoveries         \(cleanRecoveries) of \(kills)\(killedBeforeTheJournal > 0 ? " (\(killedBeforeTheJournal) killed before the journal existed: nothing to recover)" : "")
            lost or double fills     \(fillProblems)
            unprotected positions    \(protectionProblems)
            duplicated orders        \(duplicateOrders)
            failed recoveries        \(failures.count)
            corrections applied      \(corrections)
            fills at the exchange    \(fills)
            """ + problems.prefix(20).map { "\n  - \($0)" }.joined() + failures.prefix(5).map { "\n  ! \($0)" }.joined()
        }

        /// The figures as a JSON object, with every failed check and failed recovery in full.
        public var json: String {
            "{\"kills\":\(kills),\"tornTails\":\(tornTails),\"tornTailsRepaired\":\(tornTailsRepaired),\"cleanRecoveries\":\(cleanRecoveries),"
                + "\"killedBeforeTheJournal\":\(killedBeforeTheJournal),"
                + "\"lostOrDoubleFills\":\(fillProblems),\"unprotectedPositions\":\(protectionProblems),\"duplicatedOrders\":\(duplicateOrders),"
                + "\"failedRecoveries\":\(failures.count),\"corrections\":\(corrections),\"fills\":\(fills),\"passed\":\(passed),"
                + "\"problems\":[\(problems.map(JSONText.quote).joined(separator: ","))],\"failures\":[\(failures.map(JSONText.quote).joined(separator: ","))]}"
        }
    }

    /// The `fillguard` binary to run.
    public var binary: String
    /// Working directory for the journal and exchange state (created if needed).
    public var directory: String
    /// Kill points.
    public var points: Int
    /// Seed of the kill instants (and of the sessions).
    public var seed: UInt64
    /// Symbols per session.
    public var symbols: Int = 10
    /// Seconds per session (a kill usually comes first).
    public var sessionSeconds: Double = 1.5
    /// Tear the journal's last record after every n-th kill (0: never).
    public var tearEvery: Int = 10
    /// Journal durability the sessions use.
    public var durability = "off"
    /// Fault rate of the exchange during sessions.
    public var faultRate = 0.02
    /// Stop at the first failed check, leaving the journal and exchange state in `directory`.
    public var stopOnFailure = false
    /// Damages the journal's last record in place (a torn write); given the journal path.
    public var tearTail: @Sendable (String) throws -> Void

    /// A harness.
    public init(binary: String, directory: String, points: Int, seed: UInt64, tearTail: @escaping @Sendable (String) throws -> Void) {
        self.binary = binary
        self.directory = directory
        self.points = points
        self.seed = seed
        self.tearTail = tearTail
    }

    /// True when `recover` found no journal after a session killed while it created its journal
    /// (its first milliseconds): nothing was recorded, so there is nothing to recover.
    static func foundNoJournalYet(killed: Bool, recoverStatus: Int32, recoverErrors: String) -> Bool {
        killed && recoverStatus == 2
            && ["nothing was recorded in it", "is empty, not a journal", "no journal at"].contains { recoverErrors.contains($0) }
    }

    /// `value` in plain decimal form, as `simulate` takes it (`"\(value)"` would write 0.00001 as 1e-05).
    static func plain(_ value: Double) -> String {
        var text = String(format: "%.9f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    /// Runs every kill point; `progress` gets a line per point.
    public func run(progress: (@Sendable (String) -> Void)? = nil) async throws -> Summary {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let journal = directory + "/journal.sqlite"
        for suffix in ["", "-wal", "-shm", ".exchange"] { try? FileManager.default.removeItem(atPath: journal + suffix) }
        var random = SplitMix64(seed: seed)
        var summary = Summary()
        for point in 1...max(1, points) {
            let session = try start([
                "simulate", "--journal", journal, "--durability", durability, "--symbols", "\(symbols)",
                "--duration", Self.plain(sessionSeconds), "--seed", "\(seed)", "--fault-rate", Self.plain(faultRate), "--json",
            ])
            // A random instant: sometimes during start-up and recovery, mostly while trading.
            let millis = random.next(in: 0...Int64(sessionSeconds * 1000 + 300))
            let finished = await session.waitForExit(timeout: .milliseconds(Int64(millis)))
            if !finished { session.kill() }
            _ = await session.waitForExit(timeout: nil)
            summary.kills += 1
            if finished, session.status != 0 {
                // Ended on its own before the kill, but not cleanly: a violated invariant (exit
                // 1) or a session that could not start (exit 2, a journal it refused).
                summary.failures.append("kill \(point): the session ended before its kill with exit \(session.status): \(session.standardError.suffix(400))")
            }
            var tore = false
            if tearEvery > 0, point % tearEvery == 0 {
                try tearTail(journal)
                summary.tornTails += 1
                tore = true
            }
            let check = try start(["recover", "--journal", journal, "--seed", "\(seed)", "--json"])
            _ = await check.waitForExit(timeout: nil)
            let errors = check.standardError
            let lines = errors.split(separator: "\n").map(String.init)
            if lines.contains(where: { $0.hasPrefix("journal repaired:") }) { summary.tornTailsRepaired += tore ? 1 : 0 }
            summary.corrections += lines.filter { $0.hasPrefix("corrected:") }.count
            let failed = lines.filter { $0.hasPrefix("check failed:") }
            for line in failed {
                if line.contains("lost or counted twice") { summary.fillProblems += 1 }
                if line.contains("live stops") || line.contains("live targets") {
                    if line.contains("(want exactly 1)") && !line.contains(" 0 live") { summary.duplicateOrders += 1 } else { summary.protectionProblems += 1 }
                } else if line.contains("stop ") || line.contains("target ") || line.contains("flat but") || line.contains("of closed position") {
                    summary.protectionProblems += 1
                }
                summary.problems.append("after kill \(point) at \(millis) ms: \(line.dropFirst("check failed: ".count))")
            }
            let noJournalYet = Self.foundNoJournalYet(killed: !finished, recoverStatus: check.status, recoverErrors: errors)
            switch check.status {
            case 0: summary.cleanRecoveries += 1
            case 1 where !failed.isEmpty: break
            case 2 where noJournalYet: summary.killedBeforeTheJournal += 1
            default: summary.failures.append("kill \(point): recover exited \(check.status): \(errors.suffix(400))")
            }
            progress?("kill \(point)/\(points) at \(millis) ms\(tore ? " + torn tail" : ""): recover exit \(check.status), \(failed.count) failed checks")
            if stopOnFailure, check.status != 0, !noJournalYet {
                try? errors.write(toFile: directory + "/failed-recover.err", atomically: true, encoding: .utf8)
                break
            }
        }
        summary.fills = Self.executionCount(exchangeState: journal + ".exchange")
        return summary
    }

    private static func executionCount(exchangeState: String) -> Int {
        ((try? ExchangeLog.read(path: exchangeState)) ?? []).reduce(0) { count, entry in
            if case .execution = entry { return count + 1 }
            return count
        }
    }

    private func start(_ arguments: [String]) throws -> Child {
        try Child(binary: binary, arguments: arguments, directory: directory)
    }
}

/// A child process with its output in files (no pipe can fill up and block it).
private final class Child: @unchecked Sendable {
    private let process = Process()
    private let outputPath: String
    private let errorPath: String
    private let exit: ChildExit

    /// The children started and not yet seen to exit, and whether more may start.
    struct Running {
        /// Their process ids.
        var pids: Set<Int32> = []
        /// Set by `CrashHarness.killRunningSessions()`: none starts any more.
        var stopped = false
    }

    /// The children started and not yet seen to exit.
    static let running = Mutex(Running())

    /// True while `pid` runs: not gone, nor a zombie waiting to be reaped.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        // "pid (name) S ...": the state follows the name's closing parenthesis.
        guard let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].dropFirst().trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    init(binary: String, arguments: [String], directory: String) throws {
        let id = UUID().uuidString
        outputPath = directory + "/child-\(id).out"
        errorPath = directory + "/child-\(id).err"
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        // The session ends with the harness: a crash test stopped by a signal leaves none running.
        var environment = ProcessInfo.processInfo.environment
        environment[CrashHarness.parentVariable] = String(getpid())
        process.environment = environment
        let process = process
        let (outputPath, errorPath) = (outputPath, errorPath)
        let started = try Child.running.withLock { running -> ChildExit? in
            // Stopped (the process is being interrupted): no file made, nothing started.
            guard !running.stopped else { return nil }
            // Registered before the termination handler can run (it takes the same lock).
            let (exit, _) = try ChildExit.spawn(process, then: { finished in
                _ = Child.running.withLock { $0.pids.remove(finished.processIdentifier) }
            }) {
                _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
                _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
                process.standardOutput = FileHandle(forWritingAtPath: outputPath)
                process.standardError = FileHandle(forWritingAtPath: errorPath)
            }
            running.pids.insert(process.processIdentifier)
            return exit
        }
        guard let started else {
            // The interrupt's clean-up ends the process in a moment: this thread waits for that,
            // rather than report a failure to start that is none.
            DispatchSemaphore(value: 0).wait()
            fatalError("unreachable: the interrupted process has exited")
        }
        exit = started
    }

    deinit {
        try? FileManager.default.removeItem(atPath: outputPath)
        try? FileManager.default.removeItem(atPath: errorPath)
    }

    /// SIGKILL, unless it has already ended (its pid may be another process's by then).
    func kill() {
        guard !exit.hasExited else { return }
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
    }

    /// Waits for the exit, or until `timeout` passes; true if it exited.
    func waitForExit(timeout: Duration?) async -> Bool {
        guard let timeout else {
            await exit.value()
            return true
        }
        // The kill instant is the experiment's random point, not a synchronisation; a child that
        // ends before it is not waited for any longer.
        let exit = exit
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await exit.value()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || exit.hasExited
        }
    }

    var status: Int32 { process.terminationStatus }
    var standardError: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }
}
