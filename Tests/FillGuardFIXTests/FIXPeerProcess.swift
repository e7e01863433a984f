import FillGuardSimulator
import Foundation
import Synchronization

/// Why the test exchange could not be used.
struct FIXPeerError: Error, CustomStringConvertible {
    /// What went wrong.
    var description: String
}

/// The QuickFIX test exchange (tools/fix-peer) as a child process, driven over its stdin control
/// channel. Every wait is on a real signal (a line the peer prints), with a timeout as a guard.
final class FIXPeerProcess: Sendable {
    private let process: Process
    private let exit: ChildExit
    private let input: FileHandle
    private let state = Mutex<State>(State())

    private struct Waiter {
        var id: Int
        /// Matches a line at index >= `from`, or the answer with this number.
        var from: Int
        var predicate: (@Sendable (String) -> Bool)?
        var answer: Int?
        var continuation: CheckedContinuation<String, any Error>
    }

    private struct State {
        var lines: [String] = []
        var answers: [String] = []
        var commandsSent = 0
        var waiters: [Waiter] = []
        var nextWaiter = 0
        var ended = false
        var port = 0
    }

    /// The package's root directory (three levels above this file).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Starts the peer (with `arguments` added, e.g. `--auto-market 7`); fails (never skips) when
    /// it has not been built.
    static func launch(arguments: [String] = []) async throws -> FIXPeerProcess {
        let environment = ProcessInfo.processInfo.environment
        let binary = environment["FILLGUARD_FIX_PEER"] ?? packageRoot.appendingPathComponent(".build/fix-peer/fix-peer").path
        let spec = environment["FILLGUARD_FIX44_XML"] ?? packageRoot.appendingPathComponent(".build/fix-peer/FIX44.xml").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw FIXPeerError(description: "the FIX test exchange is not built (\(binary) missing): run scripts/fix-peer build (needs libquickfix-dev)")
        }
        guard FileManager.default.fileExists(atPath: spec) else {
            throw FIXPeerError(description: "FIX44.xml missing at \(spec): run scripts/fix-peer build")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fix-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--spec", spec, "--dir", work.path, "--remove-dir"] + arguments
        process.standardError = FileHandle.standardError
        let (exit, (stdin, stdout)) = try ChildExit.spawn(process) {
            let pipes = (Pipe(), Pipe())
            process.standardInput = pipes.0
            process.standardOutput = pipes.1
            return pipes
        }
        let peer = FIXPeerProcess(process: process, exit: exit, input: stdin.fileHandleForWriting)
        peer.startReading(stdout.fileHandleForReading)
        let ready = try await peer.waitFor { $0.hasPrefix("READY ") }
        guard let port = Int(ready.dropFirst("READY ".count)) else { throw FIXPeerError(description: "bad READY line \(ready)") }
        peer.state.withLock { $0.port = port }
        return peer
    }

    private init(process: Process, exit: ChildExit, input: FileHandle) {
        self.process = process
        self.exit = exit
        self.input = input
    }

    /// The FIX port the peer listens on (loopback).
    var port: Int { state.withLock { $0.port } }

    private func startReading(_ handle: FileHandle) {
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    self.append(line)
                }
            }
            self.end()
        }
        thread.start()
    }

    private func append(_ line: String) {
        let ready: [(Waiter, String)] = state.withLock { state in
            state.lines.append(line)
            if line.hasPrefix("OK") || line.hasPrefix("ERR") { state.answers.append(line) }
            var matched: [(Waiter, String)] = []
            state.waiters.removeAll { waiter in
                if let number = waiter.answer {
                    guard state.answers.count >= number else { return false }
                    matched.append((waiter, state.answers[number - 1]))
                    return true
                }
                if let predicate = waiter.predicate, state.lines.count - 1 >= waiter.from, predicate(line) {
                    matched.append((waiter, line))
                    return true
                }
                return false
            }
            return matched
        }
        for (waiter, line) in ready { waiter.continuation.resume(returning: line) }
    }

    private func end() {
        let waiters: [Waiter] = state.withLock { state in
            state.ended = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: FIXPeerError(description: "fix-peer exited")) }
    }

    /// Every line printed so far.
    var lines: [String] { state.withLock { $0.lines } }

    /// Lines starting with "EVENT " so far, without the prefix.
    var events: [String] { lines.filter { $0.hasPrefix("EVENT ") }.map { String($0.dropFirst(6)) } }

    /// Waits for a line printed at index `from` or later matching `predicate`.
    @discardableResult
    func waitFor(from: Int = 0, timeout: Duration = .seconds(20), _ predicate: @escaping @Sendable (String) -> Bool) async throws -> String {
        try await wait(timeout: timeout) { id, continuation in
            Waiter(id: id, from: from, predicate: predicate, answer: nil, continuation: continuation)
        } immediate: { state in
            state.lines.count > from ? state.lines[from...].first(where: predicate) : nil
        }
    }

    private func wait(timeout: Duration, _ make: @escaping @Sendable (Int, CheckedContinuation<String, any Error>) -> Waiter,
                      immediate: @escaping @Sendable (State) -> String?) async throws -> String {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    enum Outcome { case found(String), ended, registered }
                    let outcome: Outcome = self.state.withLock { state in
                        if let line = immediate(state) { return .found(line) }
                        if state.ended { return .ended }
                        state.waiters.append(make(id, continuation))
                        return .registered
                    }
                    switch outcome {
                    case .found(let line): continuation.resume(returning: line)
                    case .ended: continuation.resume(throwing: FIXPeerError(description: "fix-peer exited"))
                    case .registered: break
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout) // a failure guard, not synchronisation
                throw FIXPeerError(description: "timed out waiting for the peer; its last lines:\n" + self.lines.suffix(30).joined(separator: "\n"))
            }
            defer {
                group.cancelAll()
                let orphan = self.state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                orphan?.continuation.resume(throwing: CancellationError())
            }
            return try await group.next()!
        }
    }

    /// Sends a control command and returns its answer ("OK ..."); throws on "ERR ...".
    @discardableResult
    func command(_ line: String) async throws -> String {
        let number = state.withLock { state -> Int in
            state.commandsSent += 1
            return state.commandsSent
        }
        try input.write(contentsOf: Data((line + "\n").utf8))
        let answer = try await wait(timeout: .seconds(20)) { id, continuation in
            Waiter(id: id, from: 0, predicate: nil, answer: number, continuation: continuation)
        } immediate: { state in
            state.answers.count >= number ? state.answers[number - 1] : nil
        }
        if answer.hasPrefix("ERR") { throw FIXPeerError(description: "fix-peer: \(line) -> \(answer)") }
        return answer
    }

    /// The exchange's orders by root ClOrdID (FillGuard's order id).
    func orders() async throws -> [String: PeerOrder] {
        let before = state.withLock { $0.lines.count }
        try await command("orders")
        let lines = state.withLock { $0.lines[before...] }
        var result: [String: PeerOrder] = [:]
        for line in lines where line.hasPrefix("ORDER ") {
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count == 10 else { continue }
            result[parts[1]] = PeerOrder(root: parts[1], clOrdID: parts[2], symbol: parts[3], side: parts[4], ordType: parts[5],
                                         quantity: parts[6], cumulative: parts[7], leaves: parts[8], status: parts[9])
        }
        return result
    }

    /// The exchange's net position and price per symbol (`positions`), and its count of fills.
    func positions() async throws -> (nets: [String: String], fills: Int) {
        let before = state.withLock { $0.lines.count }
        let answer = try await command("positions")
        let lines = state.withLock { $0.lines[before...] }
        var nets: [String: String] = [:]
        for line in lines where line.hasPrefix("POSITION ") {
            let parts = line.split(separator: " ").map(String.init)
            if parts.count == 4 { nets[parts[1]] = parts[2] }
        }
        let fills = answer.split(separator: " ").first { $0.hasPrefix("fills=") }.flatMap { Int($0.dropFirst("fills=".count)) } ?? -1
        return (nets, fills)
    }

    /// Tells the peer to quit (it closes its sessions, removes its directory and exits), without
    /// waiting for its end: a wait here would hold one of the few threads of the task pool, and
    /// with several peers stopping at once all of them, while the ends they wait for may depend
    /// on other tests going on (CI has 2 cores, so 2 such threads). A peer that will not quit is
    /// killed after 30 s by a thread of its own.
    func stop() {
        try? input.write(contentsOf: Data("quit\n".utf8))
        try? input.close()
        let (exit, process) = (self.exit, self.process)
        Thread {
            if !exit.wait(timeout: .seconds(30)) { kill(process.processIdentifier, SIGKILL) }
        }.start()
    }
}

/// One order as the test exchange sees it.
struct PeerOrder: Sendable, Hashable {
    var root: String
    var clOrdID: String
    var symbol: String
    var side: String
    var ordType: String
    var quantity: String
    var cumulative: String
    var leaves: String
    var status: String
    /// True while the order can still trade.
    var isLive: Bool { ["0", "1", "A", "E", "6"].contains(status) }
}
