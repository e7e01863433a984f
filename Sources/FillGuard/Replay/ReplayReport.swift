import FillGuardCore

/// The final state of a replay, printable as the contract JSON or as text.
public struct ReplayReport: Sendable {
    /// Positions in the order opened.
    public var positions: [PositionSnapshot]
    /// Refused lines.
    public var rejected: [RejectedLine]
    /// Broker operations by kind.
    public var operations: [OrderOperation.Kind: Int]
    /// Alerts raised.
    public var alerts: [Alert]
    /// Broken rules at the end (exit code 1 when not empty).
    public var violations: [InvariantViolation]
    /// Broker work a replay cut off unfinished, per symbol (see `TraceReplayer.operationLimit`).
    public var unsettled: [String]
    /// Scripted broker faults left over at the end (their operation never came), one line each.
    public var unusedFaults: [String]
    /// Fields of accepted trace lines that their type does not read (a misspelt name?), one line each.
    public var ignoredFields: [String]

    /// A report from its parts (replay builds one; so does `fillguard recover`).
    public init(positions: [PositionSnapshot], rejected: [RejectedLine], operations: [OrderOperation.Kind: Int],
                alerts: [Alert], violations: [InvariantViolation], unsettled: [String] = [], unusedFaults: [String] = [],
                ignoredFields: [String] = []) {
        self.positions = positions
        self.rejected = rejected
        self.operations = operations
        self.alerts = alerts
        self.violations = violations
        self.unsettled = unsettled
        self.unusedFaults = unusedFaults
        self.ignoredFields = ignoredFields
    }

    /// What the contract JSON has no field for, one line each: alerts, unfinished work, unused
    /// scripted faults and ignored fields (`fillguard replay --json` writes them to standard error).
    public var notices: [String] {
        (alerts.map { "alert: \($0)" } + unsettled.map { "unsettled: \($0)" } + unusedFaults.map { "unused: \($0)" }
            + ignoredFields.map { "ignored: \($0)" })
            .map(Self.printable)
    }

    /// Live orders as the reports list them: entry, scale-ins by index, stop-loss, take-profit
    /// (orders of one role oldest first), whatever order they were created in.
    static func listed(_ orders: [OrderSnapshot]) -> [OrderSnapshot] {
        func rank(_ role: OrderRole) -> Int {
            switch role {
            case .entry: return 0
            case .scaleIn(let index): return 1 + index
            case .stopLoss: return Int.max - 1
            case .takeProfit: return Int.max
            }
        }
        return orders.enumerated().sorted { (rank($0.element.role), $0.offset) < (rank($1.element.role), $1.offset) }.map(\.element)
    }

    /// A line for a terminal: control characters a trace put in an id or a message (a line
    /// break, an escape sequence, a bidirectional override) are shown escaped (`\u{1B}`), so
    /// they cannot forge a line or reorder one.
    public static func printable(_ line: String) -> String {
        guard line.unicodeScalars.contains(where: isControl) else { return line }
        var out = ""
        for scalar in line.unicodeScalars {
            if isControl(scalar) {
                out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: return true // control characters, line and paragraph separators
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true // bidirectional controls: they reorder what is shown
        case 0x00AD, 0x034F, 0x200B...0x200D, 0x2060...0x2064, 0xFEFF: return true // invisible: "P1" and "P\u{200B}1" would look alike
        default: return false
        }
    }

    /// The contract JSON: positions (live orders only), rejected lines, broker operation counts.
    public var json: String {
        var out = "{\"positions\":["
        out += positions.map { position in
            var text = "{\"position\":\(quote(position.id.rawValue)),\"symbol\":\(quote(position.symbol.name))"
            text += ",\"status\":\(quote(position.status.rawValue)),\"netQuantity\":\(quote(position.netQuantity.description))"
            text += ",\"averagePrice\":\(quote(position.averagePrice?.description ?? "0"))"
            text += ",\"realizedPnL\":\(quote(position.realizedPnL.description)),\"orders\":["
            text += Self.listed(position.liveOrders).map { order in
                var item = "{\"role\":\(quote(order.role.name)),\"index\":\(order.role.index.map(String.init) ?? "null")"
                item += ",\"side\":\(quote(order.side.rawValue)),\"openQuantity\":\(quote(order.openQuantity.description))"
                item += ",\"price\":\(order.type.displayPrice.map { quote($0.description) } ?? "null")"
                item += ",\"status\":\(quote(order.status.rawValue))}"
                return item
            }.joined(separator: ",")
            return text + "]}"
        }.joined(separator: ",")
        out += "],\"rejected\":["
        out += rejected.map { "{\"line\":\($0.line),\"error\":\(quote($0.error.code.rawValue)),\"message\":\(quote($0.error.message))}" }
            .joined(separator: ",")
        out += "],\"brokerOperations\":{"
        out += OrderOperation.Kind.allCases.map { "\(quote($0.rawValue)):\(operations[$0] ?? 0)" }.joined(separator: ",")
        return out + "}}"
    }

    /// A summary for a person.
    public var text: String {
        var lines: [String] = []
        for position in positions {
            lines.append("\(position.id) \(position.symbol) \(position.status.rawValue): net \(position.netQuantity), average \(position.averagePrice?.description ?? "0"), realized P&L \(position.realizedPnL)"
                         + (position.commissions == .zero ? "" : " before commissions of \(position.commissions)"))
            for order in Self.listed(position.liveOrders) {
                let price = switch order.type {
                case .market: " market"
                case .limit(let limit): " @ \(limit) (limit)"
                case .stop(let stop): " @ \(stop) (stop)"
                case .stopLimit(let stop, let limit): " @ \(stop) (stop, limit \(limit))"
                }
                lines.append("    \(order.role) \(order.side.rawValue) \(order.openQuantity)\(price) \(order.status.rawValue)")
            }
        }
        for line in rejected { lines.append("rejected line \(line.line): \(line.error.code.rawValue): \(line.error.message)") }
        lines += notices
        lines.append("broker operations: " + OrderOperation.Kind.allCases.map { "\($0.rawValue) \(operations[$0] ?? 0)" }.joined(separator: ", "))
        for violation in violations { lines.append("INVARIANT VIOLATED: \(violation)") }
        return lines.map(Self.printable).joined(separator: "\n")
    }

    private func quote(_ text: String) -> String { JSONText.quote(text) }
}
