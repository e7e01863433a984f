import FillGuardSimulator
import Foundation
import Testing

@Suite("Crash harness: kill -9 and restart")
struct CrashHarnessTests {
    /// The debug `fillguard` binary that `swift build --build-tests` made beside the tests.
    private static var binary: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/fillguard").path
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
}
