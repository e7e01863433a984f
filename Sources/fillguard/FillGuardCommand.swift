import ArgumentParser

/// The `fillguard` command line: `simulate` (the main job) and `replay`.
@main
struct FillGuardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fillguard",
        abstract: "Keeps positions exact and protective orders right while fills pour in.",
        subcommands: [SimulateCommand.self])
}
