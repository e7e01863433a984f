import ArgumentParser

/// Reads an option's number as plain decimal digits with an optional fraction ("0.25", "10"):
/// what `Double` reads besides (hexadecimal, exponents, "nan", "inf") is refused, not guessed at,
/// as the trace format refuses it.
enum PlainNumber {
    /// The number `text` spells, or a usage error that names the option.
    static func parse(_ text: String, option: String) throws -> Double {
        guard text.wholeMatch(of: /[0-9]+(\.[0-9]+)?/) != nil, let value = Double(text) else {
            throw ValidationError("\(option) takes a plain decimal number (digits, optionally '.' and more digits), got '\(text)'")
        }
        return value
    }
}
