import FillGuardCore

/// An inbound event of a symbol's lane, as journaled before it changes state. Replaying a lane's
/// inputs and intents in order through a fresh state machine rebuilds its exact state.
public enum JournalInput: Sendable, Hashable {
    /// A bracket was opened.
    case open(BracketSpec)
    /// A fill arrived.
    case execution(ExecutionReport)
    /// An order ended at the broker unasked.
    case orderStatus(OrderStatusReport)
    /// The broker answered an operation: nil for success.
    case completed(OrderOperation, failure: OperationFailure?)
    /// A retry backoff ended.
    case retryDue(OrderID)
    /// A re-arm cool-down ended.
    case rearm(PositionID)
    /// Reconciliation found the broker holding the order at this total quantity.
    case brokerQuantity(OrderID, Quantity)
    /// Reconciliation adopts a live broker order no record knows (policy `adopt`).
    case adopt(OrderID, Side, OrderType, quantity: Quantity)

    /// Applies the input to a machine, as the lane does. Errors are the machine's own refusals
    /// The instrument the input names, if it names one (timers and adoptions name orders only).
    public var symbol: Symbol? {
        switch self {
        case .open(let spec): spec.symbol
        case .execution(let report): report.symbol
        case .orderStatus(let report): report.symbol
        case .completed(let operation, _): operation.symbol
        case .retryDue, .rearm, .brokerQuantity, .adopt: nil
        }
    }

    /// (a refused input changes nothing, live or in replay).
    func apply(to machine: inout SymbolStateMachine, emitting actions: inout [SymbolStateMachine.Action]) throws(InputError) {
        switch self {
        case .open(let spec): try machine.open(spec, emitting: &actions)
        case .execution(let report): try machine.apply(report, emitting: &actions)
        case .orderStatus(let report): try machine.apply(report, emitting: &actions)
        case .completed(let operation, nil): machine.operationSucceeded(operation, emitting: &actions)
        case .completed(let operation, let failure?): machine.operationFailed(operation, failure, emitting: &actions)
        case .retryDue(let id): machine.retryDue(id, emitting: &actions)
        case .rearm(let id): machine.rearm(id, emitting: &actions)
        case .brokerQuantity(let id, let quantity): machine.adoptBrokerQuantity(id, quantity: quantity, emitting: &actions)
        case .adopt(let id, let side, let type, let quantity):
            machine.adopt(id, side: side, type: type, quantity: quantity, filled: .zero, emitting: &actions)
        }
    }
}

/// The journal's binary encoding of inputs and intents. The first byte of every payload is the
/// format version; a newer version is refused with a clear error, never guessed at.
///
/// The version also names the core's rules: recovery re-derives records with them, so it goes up
/// whenever a change to the rules could derive a journal's records differently (version 2: the
/// rules of 2026-11-27; version 3: later that day, a protective order whose resize up fails for
/// good is replaced, and a flipped position's cover is configurable; version 4, 2026-11-28: an
/// order waiting for the fills of a "too late" is asked again when the position shrinks or goes
/// flat, and taken as live when the broker lists it so, and its role's other order leaves out
/// what it may hold; a refused order that fills is held live again; the bytes are those of
/// version 1; version 5, 2026-11-29: a failure of a request never sent, `notSent`, which an
/// earlier build cannot read; the rules for everything else are version 4's). Records older than
/// `oldestReplayable` are not replayed (snapshots, which hold state, are read whatever wrote them).
enum JournalCodec {
    static let version: UInt8 = 5
    /// The oldest version whose records the current rules derive as they were derived.
    static let oldestReplayable: UInt8 = 4
    /// The oldest version whose bytes this build decodes (for the check that names it).
    static let oldestDecodable: UInt8 = 1

    static func encode(_ input: JournalInput) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(version)
        switch input {
        case .open(let spec):
            writer.write(1)
            write(spec, to: &writer)
        case .execution(let report):
            writer.write(2)
            write(report, to: &writer)
        case .orderStatus(let report):
            writer.write(3)
            writer.write(report.orderID.rawValue)
            writer.write(report.symbol.name)
            writer.write(report.outcome.rawValue)
            writer.write(report.reason)
        case .completed(let operation, let failure):
            writer.write(4)
            write(operation, to: &writer)
            switch failure {
            case nil: writer.write(0)
            case .transient(let text)?: writer.write(1); writer.write(text)
            case .permanent(let text)?: writer.write(2); writer.write(text)
            case .tooLate(let text)?: writer.write(3); writer.write(text)
            case .timedOut(let text)?: writer.write(4); writer.write(text)
            case .unknownOrder(let text)?: writer.write(5); writer.write(text)
            case .notSent(let text)?: writer.write(6); writer.write(text)
            }
        case .retryDue(let id):
            writer.write(5)
            writer.write(id.rawValue)
        case .rearm(let id):
            writer.write(6)
            writer.write(id.rawValue)
        case .brokerQuantity(let id, let quantity):
            writer.write(7)
            writer.write(id.rawValue)
            writer.write(signed: quantity.units)
        case .adopt(let id, let side, let type, let quantity):
            writer.write(8)
            writer.write(id.rawValue)
            write(side, to: &writer)
            write(type, to: &writer)
            writer.write(signed: quantity.units)
        }
        return writer.bytes
    }

    static func encode(_ operation: OrderOperation) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(version)
        write(operation, to: &writer)
        return writer.bytes
    }

    static func decodeInput(_ bytes: [UInt8]) throws(JournalError) -> JournalInput {
        try checkSupported(bytes)
        var reader = ByteReader(bytes)
        do throws(ByteReader.Damaged) {
            try checkVersion(&reader)
            let input: JournalInput
            switch try reader.byte() {
            case 1: input = .open(try readSpec(&reader))
            case 2: input = .execution(try readExecution(&reader))
            case 3:
                let order = OrderID(try reader.string())
                let symbol = Symbol(try reader.string())
                guard let outcome = OrderStatusReport.Outcome(rawValue: try reader.string()) else { throw ByteReader.Damaged() }
                input = .orderStatus(OrderStatusReport(orderID: order, symbol: symbol, outcome: outcome, reason: try reader.string()))
            case 4:
                let operation = try readOperation(&reader)
                let failure: OperationFailure?
                switch try reader.byte() {
                case 0: failure = nil
                case 1: failure = .transient(try reader.string())
                case 2: failure = .permanent(try reader.string())
                case 3: failure = .tooLate(try reader.string())
                case 4: failure = .timedOut(try reader.string())
                case 5: failure = .unknownOrder(try reader.string())
                case 6: failure = .notSent(try reader.string())
                default: throw ByteReader.Damaged()
                }
                input = .completed(operation, failure: failure)
            case 5: input = .retryDue(OrderID(try reader.string()))
            case 6: input = .rearm(PositionID(try reader.string()))
            case 7:
                let id = OrderID(try reader.string())
                input = .brokerQuantity(id, Quantity(units: try reader.signed()))
            case 8:
                let id = OrderID(try reader.string())
                let side = try readSide(&reader)
                let type = try readType(&reader)
                input = .adopt(id, side, type, quantity: Quantity(units: try reader.signed()))
            default: throw ByteReader.Damaged()
            }
            guard reader.isAtEnd else { throw ByteReader.Damaged() }
            return input
        } catch {
            throw JournalError(.corrupted, "an input record could not be decoded")
        }
    }

    static func decodeOperation(_ bytes: [UInt8]) throws(JournalError) -> OrderOperation {
        try checkSupported(bytes)
        var reader = ByteReader(bytes)
        do throws(ByteReader.Damaged) {
            try checkVersion(&reader)
            let operation = try readOperation(&reader)
            guard reader.isAtEnd else { throw ByteReader.Damaged() }
            return operation
        } catch {
            throw JournalError(.corrupted, "an intent record could not be decoded")
        }
    }

    /// Throws `unsupportedVersion` (not `corrupted`) for a payload from a newer FillGuard.
    static func checkSupported(_ payload: [UInt8]) throws(JournalError) {
        if let first = payload.first, first > version {
            throw JournalError(.unsupportedVersion, "record format \(first) is newer than this FillGuard reads (\(version)); upgrade FillGuard")
        }
    }

    private static func checkVersion(_ reader: inout ByteReader) throws(ByteReader.Damaged) {
        guard (oldestDecodable...version).contains(try reader.byte()) else { throw ByteReader.Damaged() }
    }

    /// Throws `unsupportedVersion` for a record written under earlier rules: replaying it with
    /// these could derive a state its writer never had.
    static func checkSameRules(_ record: JournalRecord) throws(JournalError) {
        guard let first = record.payload.first, first < oldestReplayable else { return }
        throw JournalError(.unsupportedVersion, "record \(JournalPosition.describe(record.sequence)) of \(record.symbol) was written by an earlier FillGuard (record format \(first), this one writes \(version)), "
                           + "whose rules may derive it differently, so it is not replayed. Recover this journal with the FillGuard that wrote it and stop that cleanly "
                           + "with a snapshot of every symbol (`fillguard simulate --journal J --snapshot-interval 1 --duration 0.1` with that build, or its library with `Journal(store:snapshotInterval: 1)` and a clean shutdown()); "
                           + "this one then starts from the snapshots")
    }

    // MARK: - Pieces

    private static func write(_ type: OrderType, to writer: inout ByteWriter) {
        switch type {
        case .market: writer.write(0)
        case .limit(let price): writer.write(1); writer.write(signed: price.units)
        case .stop(let price): writer.write(2); writer.write(signed: price.units)
        case .stopLimit(let stop, let limit): writer.write(3); writer.write(signed: stop.units); writer.write(signed: limit.units)
        }
    }

    private static func readType(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> OrderType {
        switch try reader.byte() {
        case 0: return .market
        case 1: return .limit(Price(units: try reader.signed()))
        case 2: return .stop(Price(units: try reader.signed()))
        case 3:
            let stop = Price(units: try reader.signed())
            return .stopLimit(stop: stop, limit: Price(units: try reader.signed()))
        default: throw ByteReader.Damaged()
        }
    }

    private static func write(_ side: Side, to writer: inout ByteWriter) { writer.write(side == .buy ? 0 : 1) }

    private static func readSide(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> Side {
        switch try reader.byte() {
        case 0: return .buy
        case 1: return .sell
        default: throw ByteReader.Damaged()
        }
    }

    private static func write(_ tif: TimeInForce, to writer: inout ByteWriter) { writer.write(tif.rawValue) }

    private static func readTimeInForce(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> TimeInForce {
        guard let value = TimeInForce(rawValue: try reader.string()) else { throw ByteReader.Damaged() }
        return value
    }

    private static func write(_ price: Price?, to writer: inout ByteWriter) {
        if let price { writer.write(1); writer.write(signed: price.units) } else { writer.write(0) }
    }

    private static func readOptionalPrice(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> Price? {
        try reader.bool() ? Price(units: try reader.signed()) : nil
    }

    private static func write(_ quantity: Quantity?, to writer: inout ByteWriter) {
        if let quantity { writer.write(1); writer.write(signed: quantity.units) } else { writer.write(0) }
    }

    private static func readOptionalQuantity(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> Quantity? {
        try reader.bool() ? Quantity(units: try reader.signed()) : nil
    }

    private static func write(_ spec: BracketSpec, to writer: inout ByteWriter) {
        writer.write(spec.positionID.rawValue)
        writer.write(spec.symbol.name)
        write(spec.side, to: &writer)
        writer.write(signed: spec.quantity.units)
        write(spec.entryType, to: &writer)
        write(spec.stopLoss, to: &writer)
        write(spec.takeProfit, to: &writer)
        writer.write(varint: UInt64(spec.scaleIns.count))
        for scaleIn in spec.scaleIns {
            writer.write(signed: scaleIn.quantity.units)
            write(scaleIn.type, to: &writer)
        }
        write(spec.timeInForce, to: &writer)
    }

    private static func readSpec(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> BracketSpec {
        let position = PositionID(try reader.string())
        let symbol = Symbol(try reader.string())
        let side = try readSide(&reader)
        let quantity = Quantity(units: try reader.signed())
        let entry = try readType(&reader)
        let stop = try readOptionalPrice(&reader)
        let target = try readOptionalPrice(&reader)
        let count = try reader.varint()
        guard count <= 10_000 else { throw ByteReader.Damaged() }
        var scaleIns: [BracketSpec.ScaleIn] = []
        for _ in 0..<count {
            let quantity = Quantity(units: try reader.signed())
            scaleIns.append(BracketSpec.ScaleIn(quantity: quantity, type: try readType(&reader)))
        }
        return BracketSpec(positionID: position, symbol: symbol, side: side, quantity: quantity, entryType: entry,
                           stopLoss: stop, takeProfit: target, scaleIns: scaleIns, timeInForce: try readTimeInForce(&reader))
    }

    private static func write(_ report: ExecutionReport, to writer: inout ByteWriter) {
        writer.write(report.executionID.rawValue)
        writer.write(report.orderID.rawValue)
        writer.write(report.symbol.name)
        write(report.side, to: &writer)
        writer.write(signed: report.lastQuantity.units)
        writer.write(signed: report.lastPrice.units)
        write(report.cumulativeQuantity, to: &writer)
        write(report.leavesQuantity, to: &writer)
        if let time = report.transactTime { writer.write(1); writer.write(signed: time) } else { writer.write(0) }
        writer.write(int128: report.commission.units)
    }

    private static func readExecution(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> ExecutionReport {
        let execution = ExecutionID(try reader.string())
        let order = OrderID(try reader.string())
        let symbol = Symbol(try reader.string())
        let side = try readSide(&reader)
        let quantity = Quantity(units: try reader.signed())
        let price = Price(units: try reader.signed())
        let cumulative = try readOptionalQuantity(&reader)
        let leaves = try readOptionalQuantity(&reader)
        let time: Int64? = try reader.bool() ? try reader.signed() : nil
        let commission = Money(units: try reader.int128())
        return ExecutionReport(executionID: execution, orderID: order, symbol: symbol, side: side, lastQuantity: quantity, lastPrice: price,
                               cumulativeQuantity: cumulative, leavesQuantity: leaves, transactTime: time, commission: commission)
    }

    private static func write(_ role: OrderRole, to writer: inout ByteWriter) {
        switch role {
        case .entry: writer.write(0)
        case .scaleIn(let index): writer.write(1); writer.write(varint: UInt64(index))
        case .stopLoss: writer.write(2)
        case .takeProfit: writer.write(3)
        }
    }

    private static func readRole(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> OrderRole {
        switch try reader.byte() {
        case 0: return .entry
        case 1:
            let index = try reader.varint()
            guard index < 10_000 else { throw ByteReader.Damaged() }
            return .scaleIn(Int(index))
        case 2: return .stopLoss
        case 3: return .takeProfit
        default: throw ByteReader.Damaged()
        }
    }

    private static func write(_ operation: OrderOperation, to writer: inout ByteWriter) {
        writer.write(varint: operation.id)
        writer.write(operation.orderID.rawValue)
        writer.write(operation.positionID.rawValue)
        write(operation.role, to: &writer)
        writer.write(UInt8(operation.priority.rawValue))
        writer.write(varint: UInt64(max(0, operation.attempt)))
        switch operation.request {
        case .submit(let request):
            writer.write(0)
            writer.write(request.symbol.name)
            write(request.side, to: &writer)
            write(request.type, to: &writer)
            writer.write(signed: request.quantity.units)
            write(request.timeInForce, to: &writer)
        case .modify(let request):
            writer.write(1)
            writer.write(request.symbol.name)
            writer.write(signed: request.newQuantity.units)
        case .cancel(let request):
            writer.write(2)
            writer.write(request.symbol.name)
        }
    }

    private static func readOperation(_ reader: inout ByteReader) throws(ByteReader.Damaged) -> OrderOperation {
        let id = try reader.varint()
        let order = OrderID(try reader.string())
        let position = PositionID(try reader.string())
        let role = try readRole(&reader)
        guard let priority = OrderOperation.Priority(rawValue: Int(try reader.byte())) else { throw ByteReader.Damaged() }
        let attempt = Int(clamping: try reader.varint())
        let request: OrderOperation.Request
        switch try reader.byte() {
        case 0:
            let symbol = Symbol(try reader.string())
            let side = try readSide(&reader)
            let type = try readType(&reader)
            let quantity = Quantity(units: try reader.signed())
            request = .submit(NewOrderRequest(orderID: order, symbol: symbol, side: side, type: type, quantity: quantity,
                                              timeInForce: try readTimeInForce(&reader)))
        case 1:
            let symbol = Symbol(try reader.string())
            request = .modify(ModifyOrderRequest(orderID: order, symbol: symbol, newQuantity: Quantity(units: try reader.signed())))
        case 2:
            request = .cancel(CancelOrderRequest(orderID: order, symbol: Symbol(try reader.string())))
        default:
            throw ByteReader.Damaged()
        }
        return OrderOperation(id: id, orderID: order, positionID: position, role: role, request: request, priority: priority, attempt: attempt)
    }
}
