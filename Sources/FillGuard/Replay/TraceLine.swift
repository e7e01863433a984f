import FillGuardCore

/// One line of a trace file (JSON Lines): open a bracket, a fill, or a scripted broker fault.
public enum TraceLine: Sendable, Hashable {
    /// `{"type":"open",...}`: open a bracket.
    case open(BracketSpec)
    /// `{"type":"fill",...}`: a fill of a role's order.
    case fill(TraceFill)
    /// `{"type":"brokerFault",...}`: the next matching broker operations fail.
    case brokerFault(BrokerFaultScript)

    /// Parses one line; throws `InputError` (malformed, invalidQuantity, invalidPrice, ...).
    public static func parse(_ text: String) throws(InputError) -> TraceLine {
        var unknown: [String] = []
        return try parse(text, unknownFields: &unknown)
    }

    /// Parses one line and says which of its fields it ignores, one phrase each: those its type
    /// does not read (a misspelt `"takeProfitt"` would otherwise open a bracket without a target,
    /// unsaid) and those its other fields make meaningless (an `index` for the entry).
    public static func parse(_ text: String, unknownFields: inout [String]) throws(InputError) -> TraceLine {
        let value = try JSONValue.parse(text)
        guard case .object(let fields) = value else { throw InputError(.malformed, "a trace line must be a JSON object") }
        let reader = FieldReader(fields: fields)
        let type = try reader.string("type")
        let line: TraceLine
        switch type {
        case "open": line = .open(try parseOpen(reader))
        case "fill": line = .fill(try parseFill(reader))
        case "brokerFault": line = .brokerFault(try parseFault(reader))
        default: throw InputError(.malformed, "unknown line type '\(FieldReader.shown(type))' (expected open, fill or brokerFault)")
        }
        let article = type == "open" ? "an" : "a"
        unknownFields = Self.unknownFields(of: type, in: fields).map { "'\(FieldReader.shown($0))' is not a field of \(article) \(type) line" }
            + Self.unusedFields(of: line, in: fields)
        return line
    }

    /// The fields each line type reads (nested objects by their path).
    private static let knownFields: [String: Set<String>] = [
        "open": ["type", "position", "symbol", "side", "quantity", "entry", "stopLoss", "takeProfit", "scaleIns"],
        "fill": ["type", "position", "role", "index", "quantity", "price", "execId", "cumQuantity", "leavesQuantity", "symbol", "side", "commission"],
        "brokerFault": ["type", "operation", "kind", "count", "position", "role", "index"],
        "entry": ["type", "limit", "stop"],
        "scaleIns": ["quantity", "limit", "stop"],
    ]

    /// Fields a line's type knows that this line's other fields make meaningless: an `index` for
    /// a role other than scaleIn, a price the entry's declared type does not use.
    private static func unusedFields(of line: TraceLine, in fields: [String: JSONValue]) -> [String] {
        func has(_ name: String, in object: [String: JSONValue]) -> Bool {
            if case .null? = object[name] { return false }
            return object[name] != nil
        }
        switch line {
        case .fill(let fill):
            if case .scaleIn = fill.role { return [] }
            return has("index", in: fields) ? ["'index' means nothing for role \(fill.role)"] : []
        case .brokerFault(let fault):
            if case .scaleIn? = fault.role { return [] }
            return has("index", in: fields) ? ["'index' means nothing without role scaleIn"] : []
        case .open(let spec):
            guard case .object(let entry)? = fields["entry"] else { return [] }
            let unused: [String]
            switch spec.entryType {
            case .market: unused = ["limit", "stop"]
            case .limit: unused = ["stop"]
            case .stop: unused = ["limit"]
            case .stopLimit: unused = []
            }
            return unused.filter { has($0, in: entry) }.map { "'entry.\($0)' means nothing for \(spec.entryType.kindName) entry" }
        }
    }

    private static func unknownFields(of type: String, in fields: [String: JSONValue]) -> [String] {
        func unknown(_ fields: [String: JSONValue], known: String, prefix: String) -> [String] {
            let names = knownFields[known] ?? []
            return fields.keys.filter { !names.contains($0) }.sorted().map { prefix + $0 }
        }
        var found = unknown(fields, known: type, prefix: "")
        if type == "open" {
            if case .object(let entry)? = fields["entry"] { found += unknown(entry, known: "entry", prefix: "entry.") }
            if case .array(let items)? = fields["scaleIns"] {
                for (index, item) in items.enumerated() {
                    if case .object(let scaleIn) = item { found += unknown(scaleIn, known: "scaleIns", prefix: "scaleIns[\(index)].") }
                }
            }
        }
        return found
    }

    private static func parseOpen(_ reader: FieldReader) throws(InputError) -> BracketSpec {
        let position = PositionID(try reader.string("position"))
        let symbol = try reader.string("symbol")
        guard !symbol.isEmpty else { throw InputError(.malformed, "field 'symbol' must not be empty") }
        let side = try reader.side("side")
        let quantity = try reader.quantity("quantity")
        var entryType = OrderType.market
        if let entry = try reader.optionalObject("entry") {
            entryType = try parseOrderType(entry, field: "entry", typeField: "type")
        }
        var scaleIns: [BracketSpec.ScaleIn] = []
        for (index, item) in (try reader.optionalArray("scaleIns") ?? []).enumerated() {
            guard case .object(let fields) = item else { throw InputError(.malformed, "scaleIns[\(index)] must be an object") }
            let scaleIn = FieldReader(fields: fields, prefix: "scaleIns[\(index)].")
            let quantity = try scaleIn.quantity("quantity")
            let type = try parseOrderType(scaleIn, field: "scaleIns[\(index)]", typeField: nil)
            scaleIns.append(BracketSpec.ScaleIn(quantity: quantity, type: type))
        }
        return BracketSpec(positionID: position, symbol: Symbol(symbol), side: side, quantity: quantity, entryType: entryType,
                           stopLoss: try reader.optionalPrice("stopLoss"), takeProfit: try reader.optionalPrice("takeProfit"),
                           scaleIns: scaleIns)
    }

    /// An order type from "type" (if given) and "limit"/"stop" prices.
    private static func parseOrderType(_ reader: FieldReader, field: String, typeField: String?) throws(InputError) -> OrderType {
        let limit = try reader.optionalPrice("limit")
        let stop = try reader.optionalPrice("stop")
        let declared = try typeField.flatMap { name throws(InputError) in try reader.optionalString(name) }
        switch declared {
        case "market": return .market
        case "limit":
            guard let limit else { throw InputError(.malformed, "\(field) of type limit needs 'limit'") }
            return .limit(limit)
        case "stop":
            guard let stop else { throw InputError(.malformed, "\(field) of type stop needs 'stop'") }
            return .stop(stop)
        case "stopLimit":
            guard let stop, let limit else { throw InputError(.malformed, "\(field) of type stopLimit needs 'stop' and 'limit'") }
            return .stopLimit(stop: stop, limit: limit)
        case nil:
            switch (stop, limit) {
            case (nil, nil): return .market
            case (nil, let limit?): return .limit(limit)
            case (let stop?, nil): return .stop(stop)
            case (let stop?, let limit?): return .stopLimit(stop: stop, limit: limit)
            }
        case let other?:
            throw InputError(.malformed, "\(field) has unknown type '\(FieldReader.shown(other))' (expected market, limit, stop or stopLimit)")
        }
    }

    private static func parseFill(_ reader: FieldReader) throws(InputError) -> TraceFill {
        let role = try reader.role()
        let execID = try reader.string("execId")
        guard !execID.isEmpty else { throw InputError(.malformed, "field 'execId' must not be empty") }
        if reader.has("symbol"), try reader.string("symbol").isEmpty {
            throw InputError(.malformed, "field 'symbol' must not be empty") // as on an open line
        }
        return TraceFill(
            position: PositionID(try reader.string("position")), role: role,
            quantity: try reader.quantity("quantity", mustBePositive: true), price: try reader.price("price"),
            executionID: ExecutionID(execID),
            cumulativeQuantity: try reader.optionalQuantity("cumQuantity"),
            leavesQuantity: try reader.optionalQuantity("leavesQuantity", allowZero: true),
            symbol: try reader.optionalString("symbol").map { Symbol($0) },
            side: try reader.optionalString("side").map { text throws(InputError) in
                guard let side = Side(rawValue: text) else { throw InputError(.malformed, "field 'side' must be buy or sell, got '\(FieldReader.shown(text))'") }
                return side
            },
            commission: try reader.optionalMoney("commission") ?? .zero)
    }

    private static func parseFault(_ reader: FieldReader) throws(InputError) -> BrokerFaultScript {
        let operationText = try reader.string("operation")
        guard let operation = OrderOperation.Kind(rawValue: operationText) else {
            throw InputError(.malformed, "field 'operation' must be submit, modify or cancel, got '\(operationText)'")
        }
        let kindText = try reader.string("kind")
        guard let kind = BrokerError.Kind(rawValue: kindText) else {
            throw InputError(.malformed, "field 'kind' must be transient, permanent, tooLate, timedOut, unknownOrder or notSent, got '\(kindText)'")
        }
        let count = try reader.integer("count")
        guard count >= 1 else { throw InputError(.malformed, "field 'count' must be at least 1, got \(count)") }
        var role: OrderRole?
        if reader.has("role") { role = try reader.role() }
        // A name no bracket can have would never meet an operation: refused, as an open line's.
        let position = try reader.optionalString("position")
        if let position { try BracketSpec.validateName(position, as: "field 'position': position id") }
        return BrokerFaultScript(operation: operation, count: count, kind: kind, position: position.map { PositionID($0) }, role: role)
    }
}

/// A trace fill: the order is named by position and role.
public struct TraceFill: Sendable, Hashable {
    /// The position.
    public var position: PositionID
    /// The role whose newest order filled.
    public var role: OrderRole
    /// Fill quantity.
    public var quantity: Quantity
    /// Fill price.
    public var price: Price
    /// Execution id (deduplication key).
    public var executionID: ExecutionID
    /// Optional cumulative quantity of the order, checked.
    public var cumulativeQuantity: Quantity?
    /// Optional leaves quantity of the order.
    public var leavesQuantity: Quantity?
    /// Optional symbol, checked against the position's.
    public var symbol: Symbol?
    /// Optional side, checked against the order's.
    public var side: Side?
    /// Commission charged.
    public var commission: Money
}

/// A scripted broker fault: the next `count` operations of a kind (optionally of one order) fail.
public struct BrokerFaultScript: Sendable, Hashable {
    /// Which operation kind fails.
    public var operation: OrderOperation.Kind
    /// How many times.
    public var count: Int
    /// How it fails.
    public var kind: BrokerError.Kind
    /// Only operations on this position, if given.
    public var position: PositionID?
    /// Only operations on this role, if given.
    public var role: OrderRole?
}

extension OrderType {
    /// "a market", "a limit", ... for messages.
    fileprivate var kindName: String {
        switch self {
        case .market: return "a market"
        case .limit: return "a limit"
        case .stop: return "a stop"
        case .stopLimit: return "a stop-limit"
        }
    }
}
