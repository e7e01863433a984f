@testable import FillGuardSimulator
import Foundation
import Synchronization
import Testing

@Suite("Crash harness: kill -9 and restart", .timeLimit(.minutes(5)))
struct CrashHarnessTests {
    /// The debug `fillguard` binary that `swift build --build-tests` made beside the tests.
    private static var binary: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/fillguard").path
    }

    @Test("the sessions it starts get their fault rate and duration in the plain decimal form simulate takes, never an exponent")
    func sessionNumbersArePlainDecimals() {
        #expect(CrashHarness.plain(0.00001) == "0.00001")
        #expect(CrashHarness.plain(0.02) == "0.02")
        #expect(CrashHarness.plain(1.5) == "1.5")
        #expect(CrashHarness.plain(2) == "2")
        #expect(CrashHarness.plain(0.000000001) == "0.000000001")
    }

    @Test("a kill while the session created its journal is no failed recovery: recover finds no journal, and nothing was recorded")
    func killBeforeTheJournalExistsIsNoFailure() {
        let noTables = "fillguard: cannot recover: journal corrupted: j.sqlite holds no FillGuard journal: an SQLite database with no tables (a session killed while it created its journal leaves one; nothing was recorded in it)"
        #expect(CrashHarness.foundNoJournalYet(killed: true, recoverStatus: 2, recoverErrors: noTables))
        #expect(CrashHarness.foundNoJournalYet(killed: true, recoverStatus: 2, recoverErrors: "fillguard: 'j.sqlite' is empty, not a journal"))
        #expect(CrashHarness.foundNoJournalYet(killed: true, recoverStatus: 2, recoverErrors: "fillguard: no journal at 'j.sqlite'"))
        // A session that ended on its own, or a recover that failed for another reason, is a failure.
        #expect(!CrashHarness.foundNoJournalYet(killed: false, recoverStatus: 2, recoverErrors: noTables))
        #expect(!CrashHarness.foundNoJournalYet(killed: true, recoverStatus: 2, recoverErrors: "fillguard: cannot recover: journal corrupted: record 3 fails its checksum"))
        #expect(!CrashHarness.foundNoJournalYet(killed: true, recoverStatus: 1, recoverErrors: noTables))
    }

    @Test("after every SIGKILL (and torn tails), nothing is lost, counted twice or left unprotected")
    func killAtRandomPoints() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build it first: swift build --build-tests (\(Self.binary))")
        // CI runs a few points; `fillguard crash-test --points 100` is the full run (see README).
        let points = Int(ProcessInfo.processInfo.environment["FILLGUARD_CRASH_POINTS"] ?? "") ?? 6
        var harness = CrashHarness(binary: Self.binary, directory: try temporaryDirectory(), points: points, seed: 20261125,
                                   tearTail: { try SQLiteTestAccess.tearLastRecord(path: $0) })
        harness.tearEvery = 3
        harness.symbols = 6
        let summary = try await harness.run()
        #expect(summary.kills == points)
        #expect(summary.tornTails == points / 3)
        #expect(summary.tornTailsRepaired == summary.tornTails, "each torn tail was reported and repaired")
        #expect(summary.failures.isEmpty, "\(summary.failures)")
        #expect(summary.problems.isEmpty, "\(summary.problems)")
        #expect(summary.cleanRecoveries == points)
        #expect(summary.fills > 0, "the sessions traded")
    }

    /// A stand-in for `fillguard` (a shell script): its session ends at once with `sessionExit`,
    /// its recover exits `recoverExit` without naming a failed check. Neither may pass.
    @Test("a session that ends before its kill with an error, or a recover that exits 1 naming no failed check, fails the run",
          arguments: [(1, 0), (2, 0), (0, 1)] as [(Int32, Int32)])
    func uncleanExitsFailTheRun(sessionExit: Int32, recoverExit: Int32) async throws {
        let directory = try temporaryDirectory()
        let script = directory + "/fake-fillguard"
        try """
        #!/bin/sh
        case "$1" in
          simulate) echo "session ended" >&2; exit \(sessionExit) ;;
          recover) exit \(recoverExit) ;;
        esac
        exit 3
        """.write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        // Kill instants long after the script has ended (which is not waited for): every
        // session finishes on its own.
        var harness = CrashHarness(binary: script, directory: directory + "/run", points: 2, seed: 1, tearTail: { _ in })
        harness.sessionSeconds = 30
        harness.tearEvery = 0
        let summary = try await harness.run()
        #expect(summary.kills == 2)
        #expect(!summary.passed, "\(summary.text)")
        #expect(summary.failures.count == 2, "\(summary.failures)")
        if sessionExit != 0 { #expect(summary.failures.allSatisfy { $0.contains("ended before its kill with exit \(sessionExit)") }, "\(summary.failures)") }
        if recoverExit != 0 { #expect(summary.failures.allSatisfy { $0.contains("recover exited 1") }, "\(summary.failures)") }
    }

    @Test("the JSON summary carries every failed check and failed recovery in full, not only their counts")
    func summaryJSONHasTheDetail() throws {
        var summary = CrashHarness.Summary()
        summary.kills = 2
        summary.problems = ["after kill 1 at 40 ms: P1 has \"2\" live stops (want exactly 1)"]
        summary.failures = ["kill 2: recover exited 2: journal failed"]
        let object = try #require(try JSONSerialization.jsonObject(with: Data(summary.json.utf8)) as? [String: Any])
        #expect(object["problems"] as? [String] == summary.problems)
        #expect(object["failures"] as? [String] == summary.failures)
        #expect(object["failedRecoveries"] as? Int == 1)
        #expect(object["passed"] as? Bool == false)
    }

    @Test("a session given its parent's id (as the harness gives it) ends once that parent is killed")
    func sessionEndsWithItsParent() throws {
        // sh starts a 2-minute session in the background, as the harness would, and prints its pid.
        let shell = Foundation.Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "\(CrashHarness.parentVariable)=$$ \"$0\" simulate --duration 120 --symbols 1 & echo $!; wait", Self.binary]
        shell.standardError = FileHandle.nullDevice
        let output = try ChildExit.whileSpawning {
            let output = Pipe()
            shell.standardOutput = output
            try shell.run()
            return output
        }
        let reading = output.fileHandleForReading
        var firstLine = Data()
        while !firstLine.contains(UInt8(ascii: "\n")) {
            let chunk = reading.availableData
            if chunk.isEmpty { break }
            firstLine += chunk
        }
        let session = try #require(Int32(String(decoding: firstLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        // Not waited for: Foundation hears of its end only when the session, which inherited its
        // descriptors, has ended too.
        kill(shell.processIdentifier, SIGKILL)
        // The session alone holds the pipe now: its end is the end of the pipe, waited for with
        // poll(2) on the pipe itself (the deadline only bounds how long a broken build takes to fail).
        let deadline = ContinuousClock.now + .seconds(30)
        var ended = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !ended, case let left = deadline - ContinuousClock.now, left > .zero {
            var descriptor = pollfd(fd: reading.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(left.components.seconds * 1000 + 1)) > 0 else { continue }
            let count = read(reading.fileDescriptor, &buffer, buffer.count)
            if count == 0 { ended = true } else if count < 0, errno != EINTR { break }
        }
        if !ended { kill(session, SIGKILL) } // leave nothing running
        #expect(ended, "the session ran on after its parent was killed")
    }

    @Test("crash-test interrupted (SIGINT) exits 130 at once and removes its own temporary directory")
    func interruptedCrashTestCleansUp() async throws {
        let scratch = try temporaryDirectory()
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["crash-test", "--points", "200"]
        process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": scratch + "/"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        let status = Mutex<Int32?>(nil)
        let ended = AsyncStream<Void>.makeStream()
        process.terminationHandler = { finished in
            status.withLock { $0 = finished.terminationStatus }
            ended.continuation.finish()
        }
        let errors = try ChildExit.whileSpawning {
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            return errors
        }
        // The first kill's line says the harness is at work, its directory made.
        var text = ""
        while !text.contains("kill 1/") {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).contains { $0.hasPrefix("fillguard-crash-") }, "\(text)")
        kill(process.processIdentifier, SIGINT)
        for await _ in ended.stream {}
        #expect(status.withLock { $0 } == 130)
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch).filter { $0.hasPrefix("fillguard-crash-") }
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
