@testable import FillGuardCore
import Testing

/// The execution-id set behind duplicate detection: every id found after any number of growths,
/// and sets that fill in step growing at different counts.
@Suite("Execution id set")
struct ExecutionIDSetTests {
    static func id(_ set: Int, _ number: Int) -> ExecutionID { ExecutionID("S\(set)-E\(number)") }

    /// Inserts `id` into `set`: false if it was in already.
    static func insert(_ id: ExecutionID, into set: inout ExecutionIDSet) -> Bool {
        set.insert(id, hash: ExecutionIDSet.hash(id))
    }

    @Test("sets filled in step grow their tables at different counts, never past half full")
    func growthIsSpread() {
        let sets = 200
        var tables = [ExecutionIDSet](repeating: ExecutionIDSet(limit: 1_024), count: sets)
        // For each set, the count of ids at which its table left 256 slots.
        var leftSize256 = [Int](repeating: 0, count: sets)
        for number in 0..<300 {
            for set in 0..<sets {
                let before = tables[set].tableSize
                let id = Self.id(set, number)
                #expect(Self.insert(id, into: &tables[set]))
                #expect(tables[set].count * 2 <= tables[set].tableSize || tables[set].tableSize == 0, "load at most one half")
                if before == 256, tables[set].tableSize == 512 { leftSize256[set] = tables[set].count }
            }
        }
        // Each grew once from 256 slots, somewhere from 97 + 1 to 128 + 1 ids.
        #expect(leftSize256.allSatisfy { (98...129).contains($0) }, "\(leftSize256)")
        // Spread: many different growth points, none shared by more than a few sets.
        let points = Dictionary(grouping: leftSize256, by: { $0 })
        #expect(points.count >= 16, "only \(points.count) different growth points")
        #expect(points.values.map(\.count).max()! <= sets / 8)
        for set in 0..<sets {
            for number in 0..<300 {
                let id = Self.id(set, number)
                #expect(tables[set].contains(id, hash: ExecutionIDSet.hash(id)))
            }
            let other = Self.id(set + 1, 0)
            #expect(!tables[set].contains(other, hash: ExecutionIDSet.hash(other)))
        }
    }

    @Test("a set grows no further than its generation needs, and past it keeps the load at one half")
    func growthStopsAtTheLimit() {
        for limit in [9, 100, 1_024, 4_000] {
            var set = ExecutionIDSet(limit: limit)
            for number in 0..<limit {
                let id = Self.id(limit, number)
                #expect(Self.insert(id, into: &set))
            }
            // The smallest table that holds the generation at half full (a jittered growth
            // before the limit would have doubled it once more).
            var needed = 16
            while needed / 2 < limit { needed *= 2 }
            #expect(set.tableSize == max(32, needed), "limit \(limit): table \(set.tableSize)")
            // More than the limit (an image from a larger window): still found, load at most one half.
            for number in limit..<(limit * 3) {
                let id = Self.id(limit, number)
                #expect(Self.insert(id, into: &set))
                #expect(set.count * 2 <= set.tableSize)
            }
            for number in stride(from: 0, to: limit * 3, by: 7) {
                let id = Self.id(limit, number)
                #expect(set.contains(id, hash: ExecutionIDSet.hash(id)))
            }
        }
    }

    @Test("the id that grew the table can be taken back, and every other id is still found")
    func removeLastAfterGrowth() {
        var set = ExecutionIDSet(limit: 1_024)
        var number = 0
        var grown = 0
        while grown < 4 {
            let size = set.tableSize
            let id = Self.id(7, number)
            #expect(Self.insert(id, into: &set))
            if set.tableSize != size, size > 0 {
                grown += 1
                set.removeLast(id)
                #expect(!set.contains(id, hash: ExecutionIDSet.hash(id)))
                #expect(set.count == number)
                for earlier in 0..<number {
                    let known = Self.id(7, earlier)
                    #expect(set.contains(known, hash: ExecutionIDSet.hash(known)))
                }
                // Taken back, it is accepted again exactly once.
                #expect(Self.insert(id, into: &set))
                #expect(!Self.insert(id, into: &set))
            }
            number += 1
        }
        #expect(set.count == number)
    }
}

@Suite("The runtime's fast hash agrees with string equality")
struct FastHashTests {
    @Test("text equal as Unicode hashes equal, even when one spelling is ASCII (the Kelvin sign is 'K')")
    func canonicallyEquivalentSpellings() {
        let pairs: [(String, String)] = [("K", "\u{212A}"), ("AK-47;`", "A\u{212A}-47\u{037E}\u{1FEF}"), ("é", "e\u{301}"), ("Å", "\u{212B}")]
        for (one, other) in pairs {
            #expect(one == other, "Swift calls \(one.debugDescription) and \(other.debugDescription) equal")
            #expect(FastHash.of(one) == FastHash.of(other), "\(one.debugDescription) and \(other.debugDescription) must hash alike")
        }
        #expect(FastHash.of("K") != FastHash.of("k"))
    }
}
