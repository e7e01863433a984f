import FillGuardCore
import FillGuardSQLite

/// The replacement settings a journal's session traded with, kept in the journal itself: a
/// journal replays only with the settings it was written with, so `simulate` (resuming) and
/// `recover` refuse other ones, even without the exchange's state file.
enum JournalSettings {
    /// Records the settings in a journal that has none (with `record`: a new journal); returns
    /// why the given ones do not match the recorded ones, or nil when they do. A journal that
    /// holds a session without them (older than settings, or damaged) is not checked here and
    /// not written to (its exchange state, which names the settings too, is checked).
    ///
    /// `broker` is the broker the journal's orders are at, `simulated` or `fix`: a journal of a
    /// session with the simulated exchange is refused over FIX (reconciling it with a FIX
    /// endpoint would place its orders there), and one written over FIX is refused against the
    /// simulated exchange.
    ///
    /// `flippedCover` (`FlippedPositionCover`) is checked too: recovery derives the work of the
    /// records after a snapshot again, and a flip derives other orders under another cover. A
    /// journal written before the setting existed was written under `bracket`.
    static func mismatch(in store: SQLiteJournalStore, nativeModify: Bool, strategy: String, flippedCover: String = "bracket",
                         broker: String = "simulated", record: Bool) throws -> String? {
        let given = (modify: nativeModify ? "native" : "replace", strategy: strategy)
        guard let modify = try store.setting("modify"), let saved = try store.setting("strategy") else {
            if record {
                try store.setSetting("broker", broker)
                try store.setSetting("modify", given.modify)
                try store.setSetting("strategy", given.strategy)
                try store.setSetting("flippedCover", flippedCover)
            }
            return nil
        }
        // Settings without a broker were written by a `simulate` of an earlier version: simulated.
        let tradedWith = try store.setting("broker") ?? "simulated"
        if tradedWith != broker {
            return tradedWith == "simulated"
                ? "the journal's orders are at the simulated exchange (its session was `fillguard simulate --journal`), not at a FIX endpoint: "
                    + "reconciling it there would place its orders on that market; use it without --broker fix"
                : "the journal's orders are at a \(tradedWith) broker, not the \(broker) one; use it with --broker \(tradedWith)"
        }
        guard ["native", "replace"].contains(modify), SymbolStateMachine.ReplaceStrategy(rawValue: saved) != nil else {
            return "the journal's recorded settings are damaged (modify '\(modify)', strategy '\(saved)'); it cannot be resumed safely"
        }
        if modify != given.modify {
            return "the journal's session ran \(modify == "native" ? "with native modify (no --no-modify)" : "without native modify (--no-modify)"); run with the same setting"
        }
        if saved != given.strategy {
            return "the journal's session ran with --strategy \(saved); run with the same setting"
        }
        let cover = try store.setting("flippedCover") ?? "bracket"
        guard FlippedPositionCover(rawValue: cover) != nil else {
            return "the journal's recorded settings are damaged (flippedCover '\(cover)'); it cannot be resumed safely"
        }
        if cover != flippedCover {
            return "the journal's session covered flipped positions with --flipped-cover \(cover); run with the same setting"
        }
        return nil
    }

    /// For a journal written over FIX: records the FIX session (`SENDER->TARGET`) in a journal
    /// that has none (with `record`: a new journal); returns why `session` is not the recorded
    /// one, or nil when it is (or none is recorded: a journal a library `FillManager` wrote).
    /// The journal's orders are at that counterparty: reconciling them with another one would
    /// take every live order for gone and place new ones there.
    static func fixSessionMismatch(in store: SQLiteJournalStore, session: String, record: Bool) throws -> String? {
        guard let saved = try store.setting("fixSession") else {
            if record { try store.setSetting("fixSession", session) }
            return nil
        }
        guard saved == session else {
            return "the journal's orders are at the FIX session \(saved) (SenderCompID->TargetCompID), not \(session): "
                + "use it with --fix-sender and --fix-target of that session"
        }
        return nil
    }

    /// The account a journaled session over FIX trades in: the given one (`--fix-account` or
    /// `Account`), else the one the journal recorded, else, for a new journal, one of its own
    /// (`J` and the start of its identity), recorded with `record`. With an account of its own,
    /// the broker's positions a restart compares with the journal's are this session's, not those
    /// of every run that shared the CompIDs (the test exchange keeps them per account). A journal
    /// written before accounts were recorded keeps the default (nil: the SenderCompID). Returns
    /// the account, or why the given one is not the journal's.
    static func fixAccount(in store: SQLiteJournalStore, given: String?, record: Bool) throws -> (account: String?, refusal: String?) {
        guard let saved = try store.setting("fixAccount") else {
            guard record else { return (given, nil) }
            let account = given ?? "J" + store.identity.filter { $0 != "-" }.prefix(12)
            try store.setSetting("fixAccount", account)
            return (account, nil)
        }
        if let given, given != saved {
            return (nil, "the journal's orders are in the account \(saved), not \(given): use --fix-account \(saved) (or leave it out)")
        }
        return (saved, nil)
    }
}
