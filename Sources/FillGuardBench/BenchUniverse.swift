import FillGuard
import FillGuardCore
import Logging

/// How each fill of a workload is chosen.
public enum Mix: String, Sendable, CaseIterable, Codable {
    /// Every fill is a scale-in partial fill: each one resizes both protective orders.
    case scalein
    /// 60% scale-in, 20% stop partial, 20% target partial; then each position closes (its stop
    /// fills for the rest).
    case standard
}

/// A small seeded generator (xorshift64*), so every run feeds the same fills.
struct BenchRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// A uniform value in 0..<100.
    mutating func percent() -> Int { Int(next() % 100) }
}

/// The symbols of a workload, each with one long bracket whose entry filled at setup: an open
/// position of `baseShares` with a live stop and target, and one large scale-in order that the
/// workload's fills draw from.
struct BenchUniverse: Sendable {
    struct Book: Sendable {
        var symbol: Symbol
        var position: PositionID
        var entry: OrderID
        var scaleIn: OrderID
        var stop: OrderID
        var target: OrderID
    }

    /// Shares every position holds after setup.
    static let baseShares = 1_000
    /// Price of every fill.
    static let fillPrice = Price(units: 100 * Price.unitsPerWhole)

    var books: [Book]

    /// "S000042": the symbol of index 42 (its digits are parsed back by `index(of:)`).
    static func symbol(_ index: Int) -> Symbol {
        let digits = String(index)
        return Symbol("S" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits)
    }

    /// The index of a benchmark symbol, parsed from its digits.
    static func index(of symbol: Symbol) -> Int {
        var value = 0
        for byte in symbol.name.utf8.dropFirst() { value = value * 10 + Int(byte &- 48) }
        return value
    }

    /// The bracket of symbol `index`: buy 1,000 at market, stop 90, target 110, one scale-in
    /// limit for `scaleInShares`.
    static func spec(_ index: Int, scaleInShares: Int) -> BracketSpec {
        BracketSpec(positionID: PositionID("P\(index)"), symbol: symbol(index), side: .buy, quantity: Quantity(baseShares),
                    entryType: .market, stopLoss: Price(units: 90 * Price.unitsPerWhole),
                    takeProfit: Price(units: 110 * Price.unitsPerWhole),
                    scaleIns: [.init(quantity: Quantity(max(1, scaleInShares)), type: .limit(Price(units: 100 * Price.unitsPerWhole)))])
    }

    /// A fill report for `shares` of `order`.
    @inline(__always)
    static func fill(_ number: Int, order: OrderID, symbol: Symbol, side: Side, shares: Int) -> BrokerEvent {
        .execution(ExecutionReport(executionID: ExecutionID(String(number, radix: 36)), orderID: order, symbol: symbol, side: side,
                                   lastQuantity: Quantity(shares), lastPrice: fillPrice))
    }

    /// Opens one bracket per symbol, fills every entry, waits for quiescence and learns the
    /// order ids from the manager's snapshots.
    static func setUp(_ manager: FillManager, symbols: Int, scaleInShares: Int) async -> BenchUniverse {
        for index in 0..<symbols {
            do {
                try await manager.open(spec(index, scaleInShares: scaleInShares))
            } catch {
                preconditionFailure("benchmark bracket refused: \(error)")
            }
        }
        var entries: [Symbol: OrderID] = [:]
        for position in await manager.positions() {
            if let entry = position.orders.first(where: { $0.role == .entry }) { entries[position.symbol] = entry.id }
        }
        for index in 0..<symbols {
            let symbol = symbol(index)
            guard let entry = entries[symbol] else { preconditionFailure("benchmark setup: no entry order for \(symbol)") }
            manager.receive(.execution(ExecutionReport(executionID: ExecutionID("setup-\(index)"), orderID: entry, symbol: symbol,
                                                       side: .buy, lastQuantity: Quantity(baseShares), lastPrice: fillPrice)))
        }
        await manager.waitUntilIdle()
        var books: [Book] = []
        books.reserveCapacity(symbols)
        let positions = await manager.positions()
        var byIndex: [Int: PositionSnapshot] = [:]
        for position in positions { byIndex[index(of: position.symbol)] = position }
        for index in 0..<symbols {
            guard let position = byIndex[index], let entry = position.orders.first(where: { $0.role == .entry }),
                  let scaleIn = position.liveOrder(.scaleIn(0)), let stop = position.liveOrder(.stopLoss),
                  let target = position.liveOrder(.takeProfit) else {
                preconditionFailure("benchmark setup: position of \(symbol(index)) is not open with a stop and a target")
            }
            books.append(Book(symbol: position.symbol, position: position.id, entry: entry.id, scaleIn: scaleIn.id,
                              stop: stop.id, target: target.id))
        }
        return BenchUniverse(books: books)
    }

    /// A logger that stays quiet (critical only), so logging does not distort the numbers.
    static var quietLogger: Logger {
        var logger = Logger(label: "fillguard.bench")
        logger.logLevel = .critical
        return logger
    }
}
