import FillGuardSimulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Ctrl-C during `fillguard simulate`: the first winds the session down to its report (exit
/// 130); a second one later quits at once; one within 0.2 s of the first (`timeout` signals the
/// process and then its group) is the same interrupt.
@Suite("Command line: interrupts", .serialized, .timeLimit(.minutes(5)))
struct InterruptTests {
    /// The debug `fillguard` that `swift build --build-tests` made beside the tests.
    private static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/fillguard").path

    /// A new directory of the test's own (under the run's TMPDIR).
    private static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "fillguard-interrupt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A session started and trading, with its interrupt handler in place: its metrics file
    /// (rewritten every second) counts a submit sent (the handler is installed before the
    /// session starts, the submit after). With `slowBroker`, broker answers take 3 to 4 s: that
    /// submit, sent at most a second before, is still unanswered, so the wind-down, which waits
    /// for it, lasts well past a second Ctrl-C half a second later.
    private static func startedSession(in directory: String, slowBroker: Bool) async throws -> (Process, ChildExit, output: String) {
        let output = directory + "/report.json", metrics = directory + "/metrics.prom", errors = directory + "/stderr.txt"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["simulate", "--symbols", "3", "--duration", "60", "--json", "--metrics-file", metrics]
            + (slowBroker ? ["--latency-ms", "3000-4000"] : [])
        process.standardInput = FileHandle.nullDevice
        let (exit, _) = try ChildExit.spawn(process) {
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle(forWritingAtPath: errors)
        }
        // The metrics file is the signal that the session trades: it counts a submit sent.
        @Sendable func submitsSent() -> Int {
            let text = (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("fillguard_broker_operations{operation=\"submit\"} ") }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        // Woken by the file system each time the file is written (renamed into place), on a
        // thread of its own (the wait blocks); up to a minute in all.
        let counted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            Thread {
                let events = inotify_init1(Int32(IN_CLOEXEC))
                defer { close(events) }
                _ = inotify_add_watch(events, directory, UInt32(IN_MOVED_TO | IN_CLOSE_WRITE))
                let deadline = ContinuousClock.now + .seconds(60)
                while submitsSent() == 0, !exit.hasExited, ContinuousClock.now < deadline {
                    var entry = pollfd(fd: events, events: Int16(POLLIN), revents: 0)
                    if poll(&entry, 1, 1000) == 1 {
                        var buffer = [UInt8](repeating: 0, count: 4096)
                        _ = buffer.withUnsafeMutableBytes { read(events, $0.baseAddress, $0.count) }
                    }
                }
                continuation.resume(returning: submitsSent() > 0)
            }.start()
        }
        try #require(counted, "the session never counted a submit in its metrics file")
        return (process, exit, output)
    }

    @Test("a second Ctrl-C half a second after the first quits at once: exit 130, no report")
    func secondInterruptQuits() async throws {
        let directory = try Self.directory()
        let (process, exit, output) = try await Self.startedSession(in: directory, slowBroker: true)
        kill(process.processIdentifier, SIGINT)
        // The gap between the two interrupts is what is tested, not a synchronisation.
        try await Task.sleep(for: .milliseconds(500))
        #expect(!exit.hasExited, "the wind-down (broker answers take 3 s or more) ended before the second Ctrl-C: the test cannot tell")
        kill(process.processIdentifier, SIGINT)
        await exit.value()
        #expect(process.terminationReason == .exit && process.terminationStatus == 130)
        #expect(try String(contentsOfFile: output, encoding: .utf8).isEmpty, "no report after a second Ctrl-C")
    }

    @Test("two interrupts within 0.2 s are one: the session winds down, reports, and exits 130")
    func interruptsTogetherAreOne() async throws {
        let directory = try Self.directory()
        let (process, exit, output) = try await Self.startedSession(in: directory, slowBroker: false)
        kill(process.processIdentifier, SIGINT)
        kill(process.processIdentifier, SIGTERM)
        await exit.value()
        #expect(process.terminationReason == .exit && process.terminationStatus == 130)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output))) as? [String: Any]
        #expect(report?["interrupted"] as? Bool == true)
        #expect(report?["invariantViolations"] as? Int == 0, "\(String(describing: report?["violations"]))")
        // Not a terminal: the notice is a line of its own, with no blank line before it.
        let said = try String(contentsOfFile: directory + "/stderr.txt", encoding: .utf8)
        #expect(said.hasPrefix("fillguard: stopping: winding down and checking"), "\(said)")
    }
}
