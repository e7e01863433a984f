#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FillGuard
import FillGuardCore
import Foundation

/// What the simulated exchange writes down so that it keeps its state across a restart of the
/// process it runs in, as a real broker does: every order's state after each change, every
/// execution, and the wall clock now and then (to simulate the time it was "down").
enum ExchangeLogEntry: Codable, Sendable {
    /// An order's state after a change.
    case order(SimulatedOrder)
    /// A fill, with the order's state after it and the price it filled at.
    case execution(ExecutionReport, order: SimulatedOrder)
    /// Wall-clock time (Unix nanoseconds) and every symbol's price at that moment.
    case clock(Int64, prices: [Symbol: Price])
}

/// An append-only JSON Lines file. Each entry is written with one `write(2)` before the change
/// it records is reported to anyone, so a killed process never loses an acknowledged change
/// (the page cache outlives the process; power loss is not simulated). A torn last line is
/// ignored on reading.
final class ExchangeLog: Sendable {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else { throw ExchangeLogError(message: "cannot open \(path): errno \(errno)") }
    }

    deinit { close(descriptor) }

    func write(_ entry: ExchangeLogEntry) {
        guard var line = try? JSONEncoder().encode(entry) else { return }
        line.append(0x0A)
        line.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// Wall-clock time as Unix nanoseconds.
    static func wallClockNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Every entry of the file at `path`, oldest first (none if it does not exist). Only a torn
    /// last line (no newline after it: the write was cut off) is skipped; any other line that is
    /// not an entry means the file is not this exchange's state, and reading fails rather than
    /// reconcile against a wrong, empty exchange.
    static func read(path: String) throws(ExchangeLogError) -> [ExchangeLogEntry] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        var entries: [ExchangeLogEntry] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            if let entry = try? decoder.decode(ExchangeLogEntry.self, from: Data(line)) {
                entries.append(entry)
            } else if index < lines.count - 1 {
                throw ExchangeLogError(message: "\(path) is not a simulated exchange's state: line \(index + 1) is not one of its entries")
            }
        }
        return entries
    }
}

/// The exchange's state file could not be opened.
struct ExchangeLogError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
