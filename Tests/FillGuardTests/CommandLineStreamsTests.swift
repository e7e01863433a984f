import FillGuard
import FillGuardSimulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// How `fillguard` reads and writes its standard streams when they are not plain files: a pipe
/// another program left non-blocking, a pipe whose reader has gone.
@Suite("Command line: standard streams", .timeLimit(.minutes(5)))
struct CommandLineStreamsTests {
    /// The package's root directory.
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    /// The debug `fillguard` that `swift build --build-tests` made beside the tests.
    private static let binary = root.appendingPathComponent(".build/debug/fillguard").path

    /// A trace opening `count` positions, one per symbol: its `--json` result is long (about
    /// 400 bytes a position).
    private static func longTrace(_ count: Int) -> String {
        (0..<count).map { index in
            #"{"type":"open","position":"P\#(index)","symbol":"S\#(index)","side":"buy","quantity":"100","stopLoss":"90","takeProfit":"110"}"#
        }.joined(separator: "\n") + "\n"
    }

    /// A pipe's two ends; `nonBlocking` sets O_NONBLOCK on one end, as a parent process may.
    private static func pipe(nonBlocking end: Int? = nil) throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        // Close-on-exec, set before any child can start: a child gets only the end it is handed
        // (as its input or output), and a stray copy never keeps a pipe from ending.
        let made = ChildExit.whileSpawning { () -> Bool in
            guard Glibc.pipe(&ends) == 0 else { return false }
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            return true
        }
        try #require(made)
        if let end { _ = fcntl(ends[end], F_SETFL, fcntl(ends[end], F_GETFL) | O_NONBLOCK) }
        return (ends[0], ends[1])
    }

    /// Starts `fillguard` with the given descriptors as its standard input and output (the
    /// output's closed here once the child has its copy), standard error to a file.
    /// `errors`, when given, is an existing file or device (`/dev/full`): it is never made or
    /// removed here (a failed start once unlinked `/dev/full`, and the next run made it a
    /// regular file). Without it, a temporary file of the test's own.
    private static func start(_ arguments: [String], input: Int32?, output: Int32,
                              errors given: String? = nil) throws -> (Process, ChildExit, errors: String) {
        let errors = given ?? NSTemporaryDirectory() + "fillguard-streams-\(UUID().uuidString)"
        if given == nil { _ = FileManager.default.createFile(atPath: errors, contents: nil) }
        guard let errorHandle = FileHandle(forWritingAtPath: errors) else { throw POSIXError(.ENOENT) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let exit: ChildExit
        do {
            (exit, _) = try ChildExit.spawn(process) {
                process.standardInput = input.map { FileHandle(fileDescriptor: $0, closeOnDealloc: false) } ?? FileHandle.nullDevice
                process.standardOutput = FileHandle(fileDescriptor: output, closeOnDealloc: false)
                process.standardError = errorHandle
            }
        } catch {
            close(output)
            if given == nil { unlink(errors) }
            throw error
        }
        close(output)
        return (process, exit, errors)
    }

    /// Everything left to read on `descriptor`, then closes it; the blocking reads run on a
    /// thread of their own, off Swift's task pool.
    private static func readToEnd(_ descriptor: Int32) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: readAll(descriptor)) }.start()
        }
    }

    /// Everything left to read on `descriptor` (blocking), then closes it.
    private static func readAll(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        close(descriptor)
        return bytes
    }

    @Test("a result written to a non-blocking pipe that fills up is written whole, not cut off at 64 KiB (exit 2, 'Resource temporarily unavailable')")
    func nonBlockingStandardOutput() async throws {
        let trace = NSTemporaryDirectory() + "fillguard-long-\(UUID().uuidString).jsonl"
        try Self.longTrace(3_000).write(toFile: trace, atomically: true, encoding: .utf8)
        defer { unlink(trace) }
        let output = try Self.pipe(nonBlocking: 1)
        // The smallest pipe: every write of the result fills it long before the reader has read.
        _ = fcntl(output.write, 1031 /* F_SETPIPE_SZ */, 4096)
        let (process, exit, errors) = try Self.start(["replay", trace, "--json"], input: nil, output: output.write)
        defer { unlink(errors) }
        let bytes = await Self.readToEnd(output.read)
        await exit.value()
        let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(message)")
        let result = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect((result?["positions"] as? [Any])?.count == 3_000, "\(bytes.count) bytes read")
    }

    @Test("a trace read from a non-blocking pipe that is empty for a moment is read to its end (it failed: 'cannot read standard input: Resource temporarily unavailable')")
    func nonBlockingStandardInput() async throws {
        let input = try Self.pipe(nonBlocking: 0)
        let output = try Self.pipe()
        let lines = Self.longTrace(2).split(separator: "\n").map { String($0) + "\n" }
        // The first line is there at the start; the second comes only once the first has been
        // read, so that the reader finds the pipe empty in between.
        #expect(write(input.write, lines[0], lines[0].utf8.count) == lines[0].utf8.count)
        let (process, exit, errors) = try Self.start(["replay", "-", "--json"], input: input.read, output: output.write)
        defer { unlink(errors) }
        // Off the task pool: this spins until the child has read the first line.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                var unread: Int32 = 1
                while ioctl(input.write, UInt(FIONREAD), &unread) == 0, unread > 0, !exit.hasExited { sched_yield() }
                continuation.resume()
            }.start()
        }
        // (This process keeps its copy of the read end, so that this write cannot raise SIGPIPE
        // here when the child has already ended, as it did.)
        _ = write(input.write, lines[1], lines[1].utf8.count)
        close(input.write)
        defer { close(input.read) }
        let bytes = await Self.readToEnd(output.read)
        await exit.value()
        let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(message)")
        let result = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect((result?["positions"] as? [Any])?.count == 2, "\(String(decoding: bytes, as: UTF8.self))")
    }

    @Test("--runner-processors naming a processor twice, or with an empty entry, is refused (exit 2) before anything runs",
          arguments: [("0,0", "names processor 0 more than once"), ("0,,1", "must be processor numbers")])
    func runnerProcessorsAreValidated(_ list: String, _ said: String) async throws {
        let output = try Self.pipe()
        let (process, exit, errors) = try Self.start(["simulate", "--symbols", "1", "--duration", "0.1", "--runner-threads", "2", "--runner-processors", list],
                                                     input: nil, output: output.write)
        defer { unlink(errors) }
        _ = await Self.readToEnd(output.read)
        await exit.value()
        let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit && process.terminationStatus == 2, "\(process.terminationStatus): \(message)")
        #expect(message.contains(said), "\(message)")
    }

    @Test("a result written to a pipe whose reader has gone is an error with a message (exit 2), not a death by SIGPIPE (exit 141, silent)")
    func closedPipeIsAnError() async throws {
        let output = try Self.pipe()
        close(output.read)
        let (process, exit, errors) = try Self.start(["replay", Self.root.appendingPathComponent("Tests/FillGuardTests/Traces/brief-example.jsonl").path, "--json"],
                                                     input: nil, output: output.write)
        defer { unlink(errors) }
        await exit.value()
        let message = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit && process.terminationStatus == 2,
                "\(process.terminationReason == .exit ? "exit" : "signal") \(process.terminationStatus): \(message)")
        #expect(message.contains("cannot write the result to standard output: Broken pipe"), "\(message)")
    }

    @Test("an alert that cannot be written to standard error (a full device) makes the exit 2, not a quiet 0; the result is still written")
    func unwritableAlertsAreAnError() async throws {
        let output = try Self.pipe()
        // A refused resize leaves an alert, which `--json` writes to standard error.
        let trace = Self.root.appendingPathComponent("Tests/FillGuardTests/Traces/refused-reduction.jsonl").path
        var device = stat()
        #expect(stat("/dev/full", &device) == 0 && (device.st_mode & S_IFMT) == S_IFCHR, "/dev/full is not the full device on this machine")
        let (process, exit, _) = try Self.start(["replay", trace, "--json"], input: nil, output: output.write, errors: "/dev/full")
        let bytes = await Self.readToEnd(output.read)
        await exit.value()
        #expect(process.terminationReason == .exit && process.terminationStatus == 2,
                "\(process.terminationReason == .exit ? "exit" : "signal") \(process.terminationStatus)")
        let result = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect(result?["positions"] != nil, "\(String(decoding: bytes, as: UTF8.self))")
    }
}
