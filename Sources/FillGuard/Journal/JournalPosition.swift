/// Where a lane stands in its journal. Every input gets the next input number n and the
/// sequence n << 20; the operations taken after applying it get n << 20 + 1, + 2, ... So a lane's
/// records sorted by sequence are in the exact order the lane acted, even though inputs are
/// journaled a pass before the intents they lead to.
struct JournalPosition: Sendable, Hashable {
    static let intentBits: UInt64 = 20

    /// The last input number handed out.
    var lastInput: UInt64 = 0
    /// The input being applied (or last applied).
    var currentInput: UInt64 = 0
    /// Intents taken since that input.
    var intentIndex: UInt64 = 0
    /// Records since the last snapshot.
    var sinceSnapshot = 0

    static func sequence(input: UInt64) -> UInt64 { input << intentBits }

    /// A sequence as a person reads it: "input 31", "intent 2 of input 31".
    static func describe(_ sequence: UInt64) -> String {
        let input = input(of: sequence)
        let intent = intent(of: sequence)
        return intent == 0 ? "input \(input)" : "intent \(intent) of input \(input)"
    }

    /// A sequence as a store keeps it (a signed 64-bit column), as a person reads it.
    static func describe(stored: Int64) -> String { describe(UInt64(bitPattern: stored)) }

    static func input(of sequence: UInt64) -> UInt64 { sequence >> intentBits }

    /// The intent number in a sequence (0 for the input itself).
    static func intent(of sequence: UInt64) -> UInt64 { sequence & ((1 << intentBits) - 1) }

    /// The sequence of the lane's state right now: what a snapshot taken now covers.
    var current: UInt64 { currentInput << Self.intentBits | intentIndex }

    mutating func startInput(_ number: UInt64) {
        currentInput = number
        intentIndex = 0
        sinceSnapshot += 1
    }

    mutating func nextIntent() -> UInt64 {
        intentIndex += 1
        sinceSnapshot += 1
        return current
    }

    /// Moves to a replayed record's place.
    mutating func replayed(_ sequence: UInt64) {
        currentInput = Self.input(of: sequence)
        intentIndex = Self.intent(of: sequence)
        lastInput = max(lastInput, currentInput)
        sinceSnapshot += 1
    }
}
