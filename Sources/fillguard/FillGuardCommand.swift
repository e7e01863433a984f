import ArgumentParser

/// The `fillguard` command line: `simulate` (the main job), `replay`, `recover`, `crash-test` and `bench`.
@main
struct FillGuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fillguard",
        abstract: "Keeps positions exact and protective orders right while fills pour in.",
        version: FillGuardVersion.current,
        subcommands: [SimulateCommand.self, ReplayCommand.self, RecoverCommand.self, CrashTestCommand.self, BenchCommand.self,
                      ProfileCoreCommand.self])

    /// Runs the command; unusable arguments exit with 2 (the replay contract), not 64.
    static func main() async {
        ParentWatch.startIfAsked()
        reportClosedPipesAsErrors()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error).rawValue == 64 {
                writeToStandardError(fullMessage(for: error) + "\n")
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
