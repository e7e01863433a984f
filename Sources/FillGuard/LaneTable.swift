import FillGuardCore

/// The manager's symbol -> lane map: open addressing keyed by `FastHash` of the ticker (looked up
/// for every broker report; `Dictionary` ran SipHash over the symbol each time), the lanes in the
/// order they were added.
struct LaneTable {
    private(set) var symbols: [Symbol] = []
    private(set) var lanes: [SymbolLane] = []
    /// Linear probing, a power of two at least twice the count: per slot the index plus one (0:
    /// empty) in the low 32 bits, the hash's high 32 bits above.
    private var table: [UInt64] = []

    var count: Int { lanes.count }

    /// The lane of a symbol, if it has one.
    subscript(symbol: Symbol) -> SymbolLane? {
        guard !table.isEmpty else { return nil }
        let hash = FastHash.of(symbol.name)
        let mask = table.count - 1
        let tag = hash >> 32
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = table[slot]
            if entry == 0 { return nil }
            let index = Int(entry & 0xFFFF_FFFF) - 1
            if entry >> 32 == tag, symbols[index] == symbol { return lanes[index] }
            slot = (slot + 1) & mask
        }
    }

    /// Sets the lane of a symbol (replacing one it had).
    mutating func set(_ lane: SymbolLane, for symbol: Symbol) {
        if let index = index(of: symbol) {
            lanes[index] = lane
            return
        }
        symbols.append(symbol)
        lanes.append(lane)
        if symbols.count * 2 > table.count {
            rebuild()
        } else {
            place(symbols.count - 1, hash: FastHash.of(symbol.name))
        }
    }

    private func index(of symbol: Symbol) -> Int? {
        guard !table.isEmpty else { return nil }
        let hash = FastHash.of(symbol.name)
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while table[slot] != 0 {
            let index = Int(table[slot] & 0xFFFF_FFFF) - 1
            if symbols[index] == symbol { return index }
            slot = (slot + 1) & mask
        }
        return nil
    }

    private mutating func place(_ index: Int, hash: UInt64) {
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while table[slot] != 0 { slot = (slot + 1) & mask }
        table[slot] = (hash >> 32) << 32 | UInt64(index + 1)
    }

    private mutating func rebuild() {
        var size = 16
        while size < symbols.count * 2 { size *= 2 }
        table = [UInt64](repeating: 0, count: size)
        for index in symbols.indices { place(index, hash: FastHash.of(symbols[index].name)) }
    }
}
