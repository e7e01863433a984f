import FillGuardSimulator
import Foundation

/// Ends a child process when the parent that started it has gone, so that a `crash-test` or
/// `bench` stopped by a signal sent to it alone (or killed) leaves no session or measurement
/// running on with nobody to read its result.
enum ParentWatch {
    /// Watches the process named by `CrashHarness.parentVariable` when the environment sets it:
    /// exits (143, as for SIGTERM) once this process's parent is no longer that one.
    static func startIfAsked() {
        guard let text = ProcessInfo.processInfo.environment[CrashHarness.parentVariable], let parent = Int32(text) else { return }
        watch(parent: parent)
    }

    /// Exits (143) as soon as this process's parent is no longer `parent` (checked every 0.1 s).
    static func watch(parent: Int32) {
        if getppid() != parent { exit(143) }
        Thread.detachNewThread {
            while getppid() == parent { usleep(100_000) }
            exit(143)
        }
    }
}
