import ArgumentParser
import FillGuard
import FillGuardCore
import Foundation

/// `fillguard replay FILE`: replays a trace deterministically and prints the final state.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a JSON Lines trace deterministically against a scripted broker and print the final state.",
        discussion: """
            One JSON object per line: {"type":"open",...}, {"type":"fill",...}, {"type":"brokerFault",...}; \
            the fields of each are in README.md, "Replaying a trace". Alerts (an operation that failed \
            for good, a flip) go to standard error.

            Exit codes: 0 processed, 1 an invariant was violated, 2 unusable arguments or unreadable file. \
            A role left unprotected by an operation that failed for good is reported by its alert, not \
            as a violation (a replay has no clock to re-arm it).
            """)

    @Argument(help: "The trace file (JSON Lines).")
    var file: String

    @Flag(help: "Print the final state as JSON.")
    var json = false

    @Flag(help: "The scripted broker has no native modify.")
    var noModify = false

    @Option(help: "Replacement without native modify: cancelThenCreate or createThenCancel.")
    var strategy = "cancelThenCreate"

    @Option(help: "Tries per broker operation before it fails for good.")
    var maxAttempts = 3

    func validate() throws {
        guard SymbolStateMachine.ReplaceStrategy(rawValue: strategy) != nil else {
            throw ValidationError("--strategy must be cancelThenCreate or createThenCancel")
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
    }

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue,
              let data = FileManager.default.contents(atPath: file) else {
            writeToStandardError("fillguard: cannot read trace file '\(file)' (missing, a directory or not readable)\n")
            throw ExitCode(2)
        }
        let options = ReplayOptions(nativeModify: !noModify,
                                    strategy: SymbolStateMachine.ReplaceStrategy(rawValue: strategy) ?? .cancelThenCreate,
                                    maxAttempts: maxAttempts)
        let report = TraceReplayer.replay(bytes: [UInt8](data), options: options)
        print(json ? report.json : report.text)
        // The contract JSON has no field for these: they go beside it, not into it.
        if json { for notice in report.notices { writeToStandardError("\(notice)\n") } }
        if !report.violations.isEmpty {
            for violation in report.violations { writeToStandardError(ReplayReport.printable("invariant violated: \(violation)") + "\n") }
            throw ExitCode(1)
        }
    }
}
