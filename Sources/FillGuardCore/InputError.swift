/// Why an input (a command or a broker report) was refused. A refused input changes nothing.
public struct InputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem: a stable, machine-readable code.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The input could not be read or names nothing usable (bad JSON, a missing or mistyped
        /// field, an empty execution id, a symbol or position id that is empty, holds a control
        /// or invisible character or starts or ends with white space).
        case malformed
        /// The position id is not known.
        case unknownPosition
        /// The order is not known (or the role has no order).
        case unknownOrder
        /// The report names a different symbol than the order's.
        case symbolMismatch
        /// The report names a different side than the order's.
        case sideMismatch
        /// A quantity is zero, negative, non-finite or too precise.
        case invalidQuantity
        /// A price is zero, negative, non-finite or too precise.
        case invalidPrice
        /// The fill would take the order's filled quantity above its quantity.
        case overfill
        /// The cumulative quantity went back below one already reported (one above what the
        /// fills add up to is taken: a report in between may have been missed).
        case cumulativeWentBackwards
        /// The execution id was seen before; the repeat is acknowledged and ignored.
        case duplicateExecution
        /// A position with this id exists, or the symbol already has an open position.
        case positionExists
        /// The bracket is inconsistent (its stop on the wrong side of its target) or too large
        /// (more than `BracketSpec.maximumScaleIns` scale-ins).
        case invalidBracket
        /// The write-ahead journal failed: nothing can be applied until it is repaired.
        case journalUnavailable
        /// A fill's commission is beyond any real one (its magnitude above `ExecutionReport.maximumCommission`).
        case invalidCommission
        /// The broker took back or changed on its own something it had reported: a fill it
        /// cancelled or corrected (a trade bust), an order it restated to another size. FillGuard
        /// does not undo a fill or adopt a size it did not ask for; a person must look.
        case brokerCorrection
        /// The manager is shutting down (`FillManager.shutdown()`): it takes no new bracket, and
        /// after the shutdown nothing more. A journaled manager learns of a report it refused
        /// this way at its next start, from the broker.
        case shutDown
        /// The symbol's work is held: recovery found its net at the broker different from the
        /// journal's in a way FillGuard's orders could make worse (`positionMismatch`), and a
        /// person has not released it yet (`FillManager.releaseHeldOperations(of:)`).
        case symbolHeld
        /// The broker works orders on the symbol that no journal record knows (recovery left
        /// them working: `RecoveryReport.unknownLiveOrders`): a bracket beside them could be
        /// over-covered, or sold twice, by orders FillGuard does not manage. Refused until the
        /// broker says they ended, or a person releases the symbol
        /// (`FillManager.releaseUnknownOrders(of:)`).
        case unknownOrdersLive
    }

    /// The kind of problem.
    public var code: Code
    /// A sentence a person can act on.
    public var message: String

    /// An input error. A message longer than `maximumMessageLength` (it quotes an input of
    /// megabytes, say) keeps its start and its end, and says how much was cut: refused inputs
    /// are remembered, and one cannot make the memory they take grow without bound.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message.utf8.count > Self.maximumMessageLength ? Self.shortened(message) : message
    }

    /// The longest message kept whole, in UTF-8 bytes.
    public static let maximumMessageLength = 2_048

    /// The first 1,000 and the last 500 bytes of `message` (cut between Unicode scalars, so
    /// that a huge grapheme cluster is cut too), with how many bytes were left out between.
    private static func shortened(_ message: String) -> String {
        let scalars = message.unicodeScalars
        var headEnd = scalars.startIndex
        var headBytes = 0
        while headEnd != scalars.endIndex, headBytes + UTF8.width(scalars[headEnd]) <= 1_000 {
            headBytes += UTF8.width(scalars[headEnd])
            headEnd = scalars.index(after: headEnd)
        }
        var tailStart = scalars.endIndex
        var tailBytes = 0
        while tailStart > headEnd {
            let previous = scalars.index(before: tailStart)
            guard tailBytes + UTF8.width(scalars[previous]) <= 500 else { break }
            tailBytes += UTF8.width(scalars[previous])
            tailStart = previous
        }
        let cut = message.utf8.count - headBytes - tailBytes
        return String(scalars[..<headEnd]) + "… (\(cut) bytes cut) …" + String(scalars[tailStart...])
    }

    /// "overfill: ...".
    public var description: String { "\(code.rawValue): \(message)" }
}
