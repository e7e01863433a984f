import FillGuard

/// Why FIX settings could not be used.
public struct FIXSettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, for a person.
    public var description: String

    /// An error with a readable reason.
    public init(_ description: String) { self.description = description }
}

/// The settings of one FIX initiator session as a person writes them, in a QuickFIX-style settings
/// file (`Key=Value` lines; `[DEFAULT]`/`[SESSION]` headers and `#` comments are skipped) or on the
/// command line. Keys: `SocketConnectHost`, `SocketConnectPort`, `SenderCompID`, `TargetCompID`,
/// `HeartBtInt`, `ResetOnLogon` (Y/N), `FileStorePath`, `FileStoreSync` (Y/N), `Account`,
/// `LogonTimeout`, `ReconnectInterval`, `BeginString`.
public struct FIXSettings: Sendable, Hashable {
    /// The acceptor's host (SocketConnectHost).
    public var host = "127.0.0.1"
    /// The acceptor's port (SocketConnectPort); required before connecting.
    public var port: Int?
    /// Our SenderCompID.
    public var senderCompID = "FG"
    /// The counterparty's CompID (our TargetCompID).
    public var targetCompID = "EX"
    /// HeartBtInt, seconds.
    public var heartbeatInterval = 30
    /// ResetSeqNumFlag on the first Logon; nil: reset when there is no store to resume from.
    public var resetOnLogon: Bool?
    /// Directory that keeps sequence numbers and sent messages across restarts (FileStorePath);
    /// nil: in memory only.
    public var storePath: String?
    /// With `storePath`: the store is made durable (fsync) before each sequence number it
    /// records and before what it logged is sent, so a power loss cannot lose a received fill
    /// (FileStoreSync); nil: not set (off, unless the application decides otherwise).
    public var storeSync: Bool?
    /// Account (1) on every order.
    public var account: String?
    /// Seconds to wait for the Logon (and Logout) answer.
    public var logonTimeout = 10
    /// The longest wait between reconnect attempts, seconds (ReconnectInterval): attempts start
    /// 0.1 s after a session is lost and the wait doubles up to this. While the session is down,
    /// protective work waits, so a counterparty back in a second is found within about this long.
    public var reconnectInterval = 10
    /// BeginString; only FIX.4.4 is supported.
    public var beginString = FIXMessage.fix44

    /// The defaults: 127.0.0.1, FG to EX, 30 s heartbeat, in-memory store.
    public init() {}

    /// Settings from a settings file's text.
    public static func parse(_ text: String) throws(FIXSettingsError) -> FIXSettings {
        var settings = FIXSettings()
        var sessions = 0
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = rawLine.trimmed(" \t")
            if line.uppercased().hasPrefix("[SESSION") {
                sessions += 1
                // The keys of a second session would override the first's without a word.
                guard sessions == 1 else {
                    throw FIXSettingsError("line \(number + 1): a second [SESSION]: FillGuard runs one session per settings file; give each session a file of its own")
                }
            }
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line.hasPrefix("[") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw FIXSettingsError("line \(number + 1): expected Key=Value, got \"\(line)\"")
            }
            let key = String(line[..<equals]).trimmed(" \t")
            let value = String(line[line.index(after: equals)...]).trimmed(" \t")
            do {
                try settings.set(key, value)
            } catch {
                throw FIXSettingsError("line \(number + 1): \(error.description)")
            }
        }
        return settings
    }

    /// Sets one setting by its settings-file key.
    public mutating func set(_ key: String, _ value: String) throws(FIXSettingsError) {
        func integer(_ range: ClosedRange<Int>) throws(FIXSettingsError) -> Int {
            guard let number = Int(value), range.contains(number) else { throw FIXSettingsError("\(key) must be a whole number in \(range), got \"\(value)\"") }
            return number
        }
        func nonEmpty() throws(FIXSettingsError) -> String {
            guard !value.isEmpty else { throw FIXSettingsError("\(key) must not be empty") }
            return value
        }
        /// A value sent in a FIX field: a control character (SOH, above all) would break the message.
        func fieldValue() throws(FIXSettingsError) -> String {
            let value = try nonEmpty()
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw FIXSettingsError("\(key) must not hold a control character, got \(value.debugDescription)")
            }
            return value
        }
        switch key {
        case "SocketConnectHost": host = try nonEmpty()
        case "SocketConnectPort": port = try integer(1...65_535)
        case "SenderCompID": senderCompID = try fieldValue()
        case "TargetCompID": targetCompID = try fieldValue()
        case "HeartBtInt": heartbeatInterval = try integer(1...3_600)
        case "LogonTimeout": logonTimeout = try integer(1...600)
        case "ReconnectInterval": reconnectInterval = try integer(1...3_600)
        case "FileStorePath": storePath = try nonEmpty()
        case "Account": account = try fieldValue()
        case "ResetOnLogon": resetOnLogon = try Self.flag(key, value)
        case "FileStoreSync": storeSync = try Self.flag(key, value)
        case "BeginString":
            guard value == FIXMessage.fix44 else { throw FIXSettingsError("BeginString must be \(FIXMessage.fix44), got \"\(value)\"") }
            beginString = value
        case "ConnectionType":
            guard value == "initiator" else { throw FIXSettingsError("ConnectionType must be initiator, got \"\(value)\"") }
        default:
            throw FIXSettingsError("unknown setting \(key)")
        }
    }

    /// A Y/N setting's value.
    private static func flag(_ key: String, _ value: String) throws(FIXSettingsError) -> Bool {
        switch value.uppercased() {
        case "Y", "YES", "TRUE": return true
        case "N", "NO", "FALSE": return false
        default: throw FIXSettingsError("\(key) must be Y or N, got \"\(value)\"")
        }
    }

    /// Whether the first Logon resets the sequence numbers: as configured, else only without a
    /// store (a fresh in-memory session cannot resume the counterparty's numbering).
    public var resetsOnLogon: Bool { resetOnLogon ?? (storePath == nil) }

    /// The session part.
    public var session: FIXSessionConfiguration {
        FIXSessionConfiguration(beginString: beginString, senderCompID: senderCompID, targetCompID: targetCompID,
                                heartbeatInterval: heartbeatInterval, resetSeqNumOnLogon: resetsOnLogon, logonTimeout: logonTimeout)
    }

    /// The broker configuration; fails when no port is set.
    public func brokerConfiguration(nativeModify: Bool = true) throws(FIXSettingsError) -> FIXBrokerConfiguration {
        guard let port else { throw FIXSettingsError("no FIX port: give SocketConnectPort (or --fix-port)") }
        return FIXBrokerConfiguration(host: host, port: port, session: session, application: FIXApplicationConfiguration(account: account),
                                      reconnect: FIXReconnectPolicy(maximumDelayNanoseconds: Int64(reconnectInterval) * 1_000_000_000),
                                      capabilities: BrokerCapabilities(nativeModify: nativeModify))
    }

    /// The session store: file-backed in `storePath`, else in memory.
    public func makeStore() throws(FIXSettingsError) -> FIXSessionStore {
        guard let storePath else { return InMemoryFIXSessionStore() }
        do {
            return try FileFIXSessionStore(directory: storePath, synchronous: storeSync ?? false)
        } catch {
            throw FIXSettingsError("FIX store \(storePath): \(error.description)")
        }
    }
}

extension StringProtocol {
    /// The text without the given characters at either end.
    fileprivate func trimmed(_ characters: String) -> String {
        let set = Set(characters)
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
