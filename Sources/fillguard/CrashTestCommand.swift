import ArgumentParser
import FillGuardSimulator
import FillGuardSQLite
import Foundation

/// `fillguard crash-test`: kill -9 the simulation at random points and check every restart.
struct CrashTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-test",
        abstract: "Kill `fillguard simulate --journal` with SIGKILL at random points, restart, and check nothing was lost.",
        discussion: "After each kill, `fillguard recover` must find: net = sum of unique exchange fills, no fill counted twice, every open position protected, no order duplicated. Exit 1 if any check failed.")

    @Option(parsing: .unconditional, help: "Kill points.")
    var points = 100

    @Option(parsing: .unconditional, help: "Seed of the kill instants and the sessions.")
    var seed: UInt64 = 1

    @Option(parsing: .unconditional, help: "Symbols per session.")
    var symbols = 10

    @Option(parsing: .unconditional, help: "Tear the journal's last record after every n-th kill (0: never).")
    var tearEvery = 10

    @Option(help: "Journal durability in the sessions: off (survives kill -9) or fsync.")
    var durability = "off"

    @Option(help: "Working directory (default: a new temporary one).")
    var directory: String?

    @Flag(help: "Stop at the first failed check and keep the journal and exchange state for inspection.")
    var stopOnFailure = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func validate() throws {
        guard points >= 1 else { throw ValidationError("--points must be at least 1") }
        guard (1...100_000).contains(symbols) else { throw ValidationError("--symbols must be from 1 to 100000") }
        guard tearEvery >= 0 else { throw ValidationError("--tear-every must be 0 (never) or more") }
        guard ["off", "fsync"].contains(durability) else { throw ValidationError("--durability must be off or fsync") }
        var isDirectory: ObjCBool = false
        if directory?.isEmpty == true { throw ValidationError("--directory needs a path (leave it out for a new temporary directory)") }
        if let directory, FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--directory '\(directory)' is a file, not a directory")
        }
    }

    /// Creates `path` and its missing parents (as `mkdir -p`); the system's reason when it cannot.
    private static func makeDirectory(_ path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component + "/"
            if mkdir(prefix, 0o755) != 0, errno != EEXIST { return "\(prefix): \(String(cString: strerror(errno)))" }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "it is not a directory"
        }
        return nil
    }

    func run() async throws {
        // The running executable itself (also when it was found on PATH), to start the sessions.
        let binary = Bundle.main.executablePath ?? (CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0])
        let workDirectory = directory ?? NSTemporaryDirectory() + "fillguard-crash-\(UUID().uuidString)"
        if let directory {
            // The test starts from an empty journal: one already there (another test's, or a
            // session's) is never replaced without a word.
            let existing = ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite.exchange"].filter { FileManager.default.fileExists(atPath: directory + "/" + $0) }
            if !existing.isEmpty {
                writeToStandardError("fillguard: --directory '\(directory)' already holds \(existing.joined(separator: " and ")); the crash test starts afresh and would replace it: give an empty or new directory\n")
                throw ExitCode(2)
            }
            if let reason = Self.makeDirectory(directory) {
                writeToStandardError("fillguard: cannot create --directory '\(directory)': \(reason)\n")
                throw ExitCode(2)
            }
            guard access(directory, W_OK | X_OK) == 0 else {
                writeToStandardError("fillguard: --directory '\(directory)' is not writable\n")
                throw ExitCode(2)
            }
        }
        // Interrupted (Ctrl-C, SIGTERM): a temporary directory of our own is removed, a given one
        // kept; its sessions end with this process (they watch it).
        let ownDirectory = directory == nil
        let interrupt = InterruptExit(message: "crash test interrupted" + (ownDirectory ? "" : "; its sessions' journals are kept in \(workDirectory)")) {
            // The session running now could still write there: it goes first (again, should the
            // harness have started the next one meanwhile).
            for _ in 0..<3 {
                CrashHarness.killRunningSessions()
                guard ownDirectory else { break }
                try? FileManager.default.removeItem(atPath: workDirectory)
                if !FileManager.default.fileExists(atPath: workDirectory) { break }
            }
        }
        defer { interrupt.release() }
        var harness = CrashHarness(binary: binary, directory: workDirectory, points: points, seed: seed,
                                   tearTail: { try SQLiteJournalStore.simulateTornWrite(path: $0) })
        harness.symbols = symbols
        harness.tearEvery = tearEvery
        harness.durability = durability
        harness.stopOnFailure = stopOnFailure
        let printLine: @Sendable (String) -> Void = { line in writeToStandardError(line + "\n") }
        let progress: (@Sendable (String) -> Void)? = json ? nil : printLine
        let summary: CrashHarness.Summary
        do {
            summary = try await harness.run(progress: progress)
        } catch {
            // The harness could not run a session (a directory it cannot write, a binary it cannot start).
            writeToStandardError("fillguard: the crash test could not run: \((error as NSError).localizedFailureReason ?? error.localizedDescription)\n")
            throw ExitCode(2)
        }
        try printResult(json ? summary.json : summary.text)
        if !summary.passed {
            writeToStandardError("the sessions' journals and logs are kept in \(workDirectory)\n")
            throw ExitCode(1)
        }
        // A temporary directory of our own, all passed: nothing in it is needed any more.
        if directory == nil { try? FileManager.default.removeItem(atPath: workDirectory) }
    }
}
