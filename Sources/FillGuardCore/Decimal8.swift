/// Parsing and formatting of exact decimals with a fixed number of fractional digits.
///
/// Shared by `Quantity` and `Price` (8 digits, `Int64` units) and `Money` (16 digits, `Int128` units).
enum DecimalText {
    /// Why a decimal string could not be read.
    enum Failure: Error, Equatable {
        case empty
        case notFinite
        case notANumber
        case tooManyDecimals(max: Int)
        case outOfRange
    }

    /// Parses `text` ("-12.345") into integer units of 10^-scale, exactly.
    ///
    /// The form is strict: an optional "-", digits, and optionally "." and more digits. Spaces, a
    /// "+", a bare ".5" or "5.", and exponents are refused (a report in an odd form is not guessed
    /// at). Zeros beyond `scale` places are allowed: "1.000000000" is 1.
    static func parse(_ text: some StringProtocol, scale: Int) -> Result<Int128, Failure> {
        if text.isEmpty { return .failure(.empty) }
        let lower = text.lowercased()
        if ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"].contains(lower) {
            return .failure(.notFinite)
        }
        var digitsBefore: [UInt8] = []
        var digitsAfter: [UInt8] = []
        var seenPoint = false
        let bytes = text.utf8
        var index = bytes.startIndex
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { index = bytes.index(after: index) }
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                if seenPoint || digitsBefore.isEmpty { return .failure(.notANumber) }
                seenPoint = true
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if seenPoint { digitsAfter.append(byte - 48) } else { digitsBefore.append(byte - 48) }
            } else {
                return .failure(.notANumber)
            }
            index = bytes.index(after: index)
        }
        if digitsBefore.isEmpty || (seenPoint && digitsAfter.isEmpty) { return .failure(.notANumber) }
        while let last = digitsAfter.last, last == 0, digitsAfter.count > scale { digitsAfter.removeLast() }
        if digitsAfter.count > scale { return .failure(.tooManyDecimals(max: scale)) }
        // 38 significant digits fit in Int128; refuse anything longer before it can overflow.
        let significant = digitsBefore.drop(while: { $0 == 0 }).count
        if significant + scale > 37 { return .failure(.outOfRange) }
        var value: Int128 = 0
        for digit in digitsBefore { value = value * 10 + Int128(digit) }
        for position in 0..<scale {
            value = value * 10 + (position < digitsAfter.count ? Int128(digitsAfter[position]) : 0)
        }
        return .success(negative ? -value : value)
    }

    /// Formats integer units of 10^-scale as the shortest exact decimal ("300", "-12.5").
    static func format(_ units: Int128, scale: Int) -> String {
        let negative = units < 0
        let magnitude = units.magnitude // Int128.min too: it has no positive counterpart
        var divisor: UInt128 = 1
        for _ in 0..<scale { divisor *= 10 }
        let whole = magnitude / divisor
        var fraction = magnitude % divisor
        var text = negative ? "-" + String(whole) : String(whole)
        if fraction != 0 {
            var digits = scale
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            let fractionText = String(fraction)
            text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        }
        return text
    }
}
