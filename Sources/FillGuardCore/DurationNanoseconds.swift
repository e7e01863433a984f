extension Duration {
    /// The duration in whole nanoseconds, held to 0...Int64.max: a setting of any size (ten
    /// billion seconds, say) becomes a wait of centuries, never an overflow.
    public var clampedNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, over) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return over ? .max : total
    }
}
