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
            for good, overdue fills, a flip, a fill refused that the broker may have traded) are listed after the state; with --json they go to standard error.

            Exit codes: 0 processed, 1 an invariant was violated, 2 unusable arguments, an unreadable file, \
            or a result or alert that could not be written. \
            A role the scripted broker kept from being right (an operation that failed for good) is \
            reported by its alert, not as a violation (a replay has no clock to re-arm it).
            """)

    @Argument(help: "The trace file (JSON Lines); - reads standard input.")
    var file: String

    @Flag(help: "Print the final state as JSON.")
    var json = false

    @Flag(help: "The scripted broker has no native modify.")
    var noModify = false

    @Option(help: "Replacement without native modify: cancelThenCreate or createThenCancel.")
    var strategy = "cancelThenCreate"

    @Option(parsing: .unconditional, help: "Tries per broker operation before it fails for good.")
    var maxAttempts = 3

    @Option(help: "How a position a late fill flipped against its bracket is covered: bracket (its stop-loss and take-profit, as rules 2 and 7 say) or stopLossOnly (its stop-loss alone: never a double exit).")
    var flippedCover = "bracket"

    func validate() throws {
        guard SymbolStateMachine.ReplaceStrategy(rawValue: strategy) != nil else {
            throw ValidationError("--strategy must be cancelThenCreate or createThenCancel")
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard FlippedPositionCover(rawValue: flippedCover) != nil else {
            throw ValidationError("--flipped-cover must be bracket or stopLossOnly")
        }
    }

    func run() throws {
        let options = ReplayOptions(nativeModify: !noModify,
                                    strategy: SymbolStateMachine.ReplaceStrategy(rawValue: strategy) ?? .cancelThenCreate,
                                    maxAttempts: maxAttempts,
                                    flippedPositionCover: FlippedPositionCover(rawValue: flippedCover) ?? .bracket)
        // Replayed as it is read: a long trace (or an endless one) is never held whole.
        var stream = TraceStream(options: options)
        if case .failure(let error) = readInput(file, { stream.feed($0) }) {
            writeToStandardError("fillguard: trace file: \(error)\n")
            throw ExitCode(2)
        }
        let report = stream.finish()
        try printResult(json ? report.json : report.text)
        // The contract JSON has no field for these: they go beside it, not into it.
        // An alert that could not be written (standard error closed or full) must not pass as a
        // quiet run: the exit says so, as for the result.
        var noticesWritten = true
        if json {
            for notice in report.notices where !writeToStandardError("\(notice)\n") { noticesWritten = false }
        }
        if !report.violations.isEmpty {
            for violation in report.violations { writeToStandardError(ReplayReport.printable("invariant violated: \(violation)") + "\n") }
            throw ExitCode(1)
        }
        if !noticesWritten { throw ExitCode(2) }
    }
}
