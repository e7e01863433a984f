import FillGuardCore
import Foundation

/// Reads typed fields from a JSON object with messages that name the field.
struct FieldReader {
    let fields: [String: JSONValue]
    var prefix = ""

    func has(_ name: String) -> Bool {
        if case .null? = fields[name] { return false }
        return fields[name] != nil
    }

    func string(_ name: String) throws(InputError) -> String {
        guard let value = fields[name] else { throw InputError(.malformed, "missing field '\(prefix)\(name)'") }
        guard case .string(let text) = value else { throw InputError(.malformed, "field '\(prefix)\(name)' must be a string") }
        return text
    }

    func optionalString(_ name: String) throws(InputError) -> String? {
        has(name) ? try string(name) : nil
    }

    func integer(_ name: String) throws(InputError) -> Int {
        guard let value = fields[name] else { throw InputError(.malformed, "missing field '\(prefix)\(name)'") }
        guard case .number(let number, let exactly) = value, number.isFinite, number.rounded() == number, exactly.map(Self.isWhole) ?? true else {
            throw InputError(.malformed, "field '\(prefix)\(name)' must be a whole number")
        }
        guard abs(number) < 1e9 else {
            // As written, where the number was read exactly (up to 38 digits); else as read.
            let shown = exactly.map { "\($0)" } ?? (abs(number) < 9e18 ? String(Int64(number)) : "\(number)")
            throw InputError(.malformed, "field '\(prefix)\(name)' is out of range (more than 9 digits), got \(shown)")
        }
        return Int(number)
    }

    /// Whether a number as written has no fraction (`1.0` has none; `0.99999999999999999` has).
    private static func isWhole(_ number: Decimal) -> Bool {
        var value = number
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 0, .plain)
        return rounded == number
    }

    func optionalObject(_ name: String) throws(InputError) -> FieldReader? {
        guard has(name) else { return nil }
        guard case .object(let inner)? = fields[name] else { throw InputError(.malformed, "field '\(prefix)\(name)' must be an object") }
        return FieldReader(fields: inner, prefix: "\(prefix)\(name).")
    }

    func optionalArray(_ name: String) throws(InputError) -> [JSONValue]? {
        guard has(name) else { return nil }
        guard case .array(let items)? = fields[name] else { throw InputError(.malformed, "field '\(prefix)\(name)' must be an array") }
        return items
    }

    func side(_ name: String) throws(InputError) -> Side {
        let text = try string(name)
        guard let side = Side(rawValue: text) else { throw InputError(.malformed, "field '\(prefix)\(name)' must be buy or sell, got '\(Self.shown(text))'") }
        return side
    }

    func role() throws(InputError) -> OrderRole {
        let text = try string("role")
        switch text {
        case "entry": return .entry
        case "stopLoss": return .stopLoss
        case "takeProfit": return .takeProfit
        case "scaleIn":
            // Which scale-in is never guessed: a bracket may have several.
            guard has("index") else { throw InputError(.malformed, "role scaleIn needs field 'index' (0 for the first scale-in)") }
            let index = try integer("index")
            guard index >= 0 else { throw InputError(.malformed, "field 'index' must not be negative") }
            return .scaleIn(index)
        default: throw InputError(.malformed, "field 'role' must be entry, scaleIn, stopLoss or takeProfit, got '\(Self.shown(text))'")
        }
    }

    /// A positive quantity (zero allowed with `allowZero`).
    func quantity(_ name: String, mustBePositive: Bool = true, allowZero: Bool = false) throws(InputError) -> Quantity {
        let text = try decimalText(name)
        guard let value = Quantity(text) else {
            throw InputError(.invalidQuantity, "'\(prefix)\(name)' \(Self.why(text, places: Quantity.decimalPlaces))")
        }
        if value.units < 0 || (value.isZero && !allowZero) {
            throw InputError(.invalidQuantity, "'\(prefix)\(name)' must be \(allowZero ? "zero or more" : "positive"), got \(text)")
        }
        return value
    }

    func optionalQuantity(_ name: String, allowZero: Bool = false) throws(InputError) -> Quantity? {
        has(name) ? try quantity(name, allowZero: allowZero) : nil
    }

    func price(_ name: String) throws(InputError) -> Price {
        let text = try decimalText(name)
        guard let value = Price(text) else {
            throw InputError(.invalidPrice, "'\(prefix)\(name)' \(Self.why(text, places: Price.decimalPlaces))")
        }
        guard value.units > 0 else { throw InputError(.invalidPrice, "'\(prefix)\(name)' must be positive, got \(Self.shown(text))") }
        return value
    }

    func optionalPrice(_ name: String) throws(InputError) -> Price? {
        has(name) ? try price(name) : nil
    }

    func optionalMoney(_ name: String) throws(InputError) -> Money? {
        guard has(name) else { return nil }
        let text = try decimalText(name)
        guard let value = Money(text) else { throw InputError(.invalidCommission, "'\(prefix)\(name)' \(Self.why(text, places: Money.decimalPlaces))") }
        return value
    }

    private func decimalText(_ name: String) throws(InputError) -> String {
        guard let value = fields[name] else { throw InputError(.malformed, "missing field '\(prefix)\(name)'") }
        guard case .string(let text) = value else {
            throw InputError(.malformed, "field '\(prefix)\(name)' must be a decimal string such as \"300\" (exact decimals travel as strings)")
        }
        return text
    }

    /// `text` as an error message quotes it: whole when short, else its start and its length (a
    /// line may hold a number of a million digits, which is not worth repeating).
    static func shown(_ text: String) -> String {
        let length = text.utf8.count
        guard length > 64 else { return text }
        return "\(text.prefix(32))… (\(length) characters)"
    }

    private static func why(_ original: String, places: Int) -> String {
        let text = shown(original)
        let lower = original.lowercased()
        if lower.contains("nan") || lower.contains("inf") { return "must be a finite number, got \(text)" }
        // A plain decimal ("-12.5") that did not convert has too many places or is too large.
        let unsigned = original.first == "-" ? original.dropFirst() : Substring(original)
        let parts = unsigned.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let isDigits = { (part: Substring) in !part.isEmpty && part.allSatisfy { $0 >= "0" && $0 <= "9" } }
        if let whole = parts.first, isDigits(whole), parts.count == 1 || isDigits(parts[1]) {
            if parts.count == 2, parts[1].count > places { return "must have at most \(places) decimal places, got '\(text)'" }
            return "is out of range (at most 1000000000), got \(text)"
        }
        return "must be a plain decimal such as \"12.5\" (digits on both sides of the point; no spaces, '+' or exponent), with at most \(places) decimal places, got '\(text)'"
    }
}
