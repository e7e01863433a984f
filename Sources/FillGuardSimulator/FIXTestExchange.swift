import Foundation

/// The QuickFIX test exchange (tools/fix-peer) as a child process: started on a free port with
/// its output drained, stopped with "quit". For benchmarks and runs that need a FIX endpoint.
public final class FIXTestExchange: Sendable {
    private let process: Process
    private let exit: ChildExit
    private let input: FileHandle
    /// Its store and logs, a temporary directory of its own: the exchange removes it when it ends
    /// (also when this process died and its standard input closed), and `stop()` does too.
    private let work: URL
    /// The FIX port it listens on (loopback).
    public let port: Int

    private init(process: Process, exit: ChildExit, input: FileHandle, work: URL, port: Int) {
        self.process = process
        self.exit = exit
        self.input = input
        self.work = work
        self.port = port
    }

    /// The binary to start: `peer`, else $FILLGUARD_FIX_PEER, else `.build/fix-peer/fix-peer`
    /// (where scripts/fix-peer build puts it) of the checkout this executable was built in, found
    /// from its own path, else of the current directory.
    public static func binary(_ peer: String? = nil) -> String {
        if let peer = peer ?? ProcessInfo.processInfo.environment["FILLGUARD_FIX_PEER"] { return peer }
        // .build/release/fillguard or .build/<triple>/release/fillguard: look up for .build.
        if let executable = Bundle.main.executablePath {
            var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
            for _ in 0..<3 {
                if directory.lastPathComponent == ".build" {
                    let candidate = directory.appendingPathComponent("fix-peer/fix-peer").path
                    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
                    break
                }
                directory.deleteLastPathComponent()
            }
        }
        return ".build/fix-peer/fix-peer"
    }

    /// Its data dictionary: `spec`, else $FILLGUARD_FIX44_XML, else FIX44.xml next to `binary`.
    public static func dictionary(_ spec: String? = nil, binary: String) -> String {
        spec ?? ProcessInfo.processInfo.environment["FILLGUARD_FIX44_XML"]
            ?? URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("FIX44.xml").path
    }

    /// Whether the binary and its dictionary are there to be started.
    public static func isAvailable(binary: String, spec: String) -> Bool {
        FileManager.default.isExecutableFile(atPath: binary) && FileManager.default.fileExists(atPath: spec)
    }

    /// Starts `binary` with `arguments` (e.g. --auto-market 1) and waits up to 30 s for its READY line.
    public static func launch(binary: String, spec: String, arguments: [String]) throws(FIXSimulationError) -> FIXTestExchange {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw FIXSimulationError("the FIX test exchange is not built (\(binary) missing): run scripts/fix-peer build, or give its path")
        }
        guard FileManager.default.fileExists(atPath: spec) else {
            throw FIXSimulationError("FIX44.xml missing at \(spec): run scripts/fix-peer build, or give its path")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fix-peer-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--spec", spec, "--dir", work.path, "--remove-dir"] + arguments
        let exit: ChildExit
        let (stdin, stdout): (Pipe, Pipe)
        do {
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            (exit, (stdin, stdout)) = try ChildExit.spawn(process) {
                let pipes = (Pipe(), Pipe())
                process.standardInput = pipes.0
                process.standardOutput = pipes.1
                return pipes
            }
        } catch {
            try? FileManager.default.removeItem(at: work)
            throw FIXSimulationError("cannot start the FIX test exchange \(binary): \(error)")
        }
        let ready = DispatchSemaphore(value: 0)
        let readyLine = FirstLine()
        let reader = Thread {
            let handle = stdout.fileHandleForReading
            var pending = Data()
            var announced = false
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                guard !announced else { continue } // drained and dropped after READY
                pending.append(chunk)
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    readyLine.set(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    announced = true
                    ready.signal()
                }
            }
            if !announced { ready.signal() }
        }
        reader.start()
        guard ready.wait(timeout: .now() + 30) == .success, let line = readyLine.get(), line.hasPrefix("READY "),
              let port = Int(line.dropFirst("READY ".count)) else {
            process.terminate()
            if !exit.wait(timeout: .seconds(10)) {
                kill(process.processIdentifier, SIGKILL)
                exit.wait(timeout: .seconds(10))
            }
            try? FileManager.default.removeItem(at: work)
            throw FIXSimulationError("the FIX test exchange did not start (\(readyLine.get() ?? "no output"))")
        }
        return FIXTestExchange(process: process, exit: exit, input: stdin.fileHandleForWriting, work: work, port: port)
    }

    /// Asks it to quit, waits for it (killed when it has not ended within 30 s; never longer
    /// than 40 s in all) and removes its directory.
    public func stop() {
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        if !exit.wait(timeout: .seconds(30)) {
            kill(process.processIdentifier, SIGKILL)
            exit.wait(timeout: .seconds(10))
        }
        try? FileManager.default.removeItem(at: work)
    }
}

/// The first line a child printed, shared between its reader thread and the launcher.
private final class FirstLine: @unchecked Sendable {
    private let lock = NSLock()
    private var line: String?

    func set(_ value: String) { lock.withLock { line = value } }
    func get() -> String? { lock.withLock { line } }
}
