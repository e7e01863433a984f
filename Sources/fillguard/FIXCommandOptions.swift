import ArgumentParser
import FillGuardFIX

/// The `--fix-*` options `simulate --broker fix` and `recover --broker fix` share: a settings
/// file and per-setting overrides.
struct FIXCommandOptions: ParsableArguments {
    @Option(help: "FIX: settings file (QuickFIX-style Key=Value: SocketConnectHost, SocketConnectPort, SenderCompID, TargetCompID, HeartBtInt, ResetOnLogon, FileStorePath, FileStoreSync, Account, LogonTimeout, ReconnectInterval); the --fix-* options override it.")
    var fixConfig: String?

    @Option(help: "FIX: the acceptor's host (default 127.0.0.1).")
    var fixHost: String?

    @Option(parsing: .unconditional, help: "FIX: the acceptor's port.")
    var fixPort: Int?

    @Option(help: "FIX: our SenderCompID (default FG).")
    var fixSender: String?

    @Option(help: "FIX: the counterparty's CompID, our TargetCompID (default EX).")
    var fixTarget: String?

    @Option(parsing: .unconditional, help: "FIX: heartbeat interval in seconds (default 30).")
    var fixHeartbeat: Int?

    @Option(help: "FIX: send ResetSeqNumFlag on the first Logon, Y or N (default: Y without a store, N with one).")
    var fixResetOnLogon: String?

    @Option(help: "FIX: directory keeping sequence numbers and sent messages across runs (default: in memory).")
    var fixStore: String?

    @Option(help: "FIX: with a store, fsync it before each sequence number it records, Y or N, so a power loss cannot lose a fill (default: Y with a journal whose durability is fsync, else N).")
    var fixStoreSync: String?

    @Option(help: "FIX: Account (1) on every order.")
    var fixAccount: String?

    @Option(parsing: .unconditional, help: "FIX: the longest wait in seconds between reconnect attempts, which start 0.1 s after the session is lost and double (default 10).")
    var fixReconnectInterval: Int?

    @Option(parsing: .unconditional, help: "FIX: seconds the final check waits for FillGuard and the broker to agree (default 30).",
            transform: { try PlainNumber.parse($0, option: "--fix-settle-timeout") })
    var fixSettleTimeout: Double?

    /// True when any `--fix-*` option was given.
    var given: Bool {
        fixConfig != nil || fixHost != nil || fixPort != nil || fixSender != nil || fixTarget != nil || fixHeartbeat != nil
            || fixResetOnLogon != nil || fixStore != nil || fixStoreSync != nil || fixAccount != nil || fixSettleTimeout != nil
            || fixReconnectInterval != nil
    }

    /// The settle timeout in seconds, given or the default.
    private var settleSeconds: Double { fixSettleTimeout ?? 30 }

    /// Checks what `--broker fix` needs: a port, a sane settle timeout, readable settings.
    func validateForFIX() throws {
        guard settleSeconds >= 0.001, settleSeconds <= 3_600 else { throw ValidationError("--fix-settle-timeout must be a number of seconds from 0.001 to 3600") }
        let settings = try self.settings()
        guard settings.port != nil else { throw ValidationError("--broker fix needs --fix-port (or SocketConnectPort in --fix-config)") }
        guard settings.storeSync == nil || settings.storePath != nil else {
            throw ValidationError("--fix-store-sync (FileStoreSync) is for a session store on disk: it needs --fix-store (or FileStorePath)")
        }
    }

    /// The FIX settings: the settings file, then the command-line overrides.
    func settings() throws -> FIXSettings {
        var settings = FIXSettings()
        if let fixConfig {
            guard let text = readTextFile(fixConfig) else { throw ValidationError("cannot read --fix-config \(fixConfig)") }
            do {
                settings = try FIXSettings.parse(text)
            } catch {
                throw ValidationError("--fix-config \(fixConfig): \(error.description)")
            }
        }
        let overrides: [(String, String?)] = [
            ("SocketConnectHost", fixHost), ("SocketConnectPort", fixPort.map(String.init)), ("SenderCompID", fixSender),
            ("TargetCompID", fixTarget), ("HeartBtInt", fixHeartbeat.map(String.init)), ("ResetOnLogon", fixResetOnLogon),
            ("FileStorePath", fixStore), ("FileStoreSync", fixStoreSync), ("Account", fixAccount),
            ("ReconnectInterval", fixReconnectInterval.map(String.init)),
        ]
        for case let (key, value?) in overrides {
            do {
                try settings.set(key, value)
            } catch {
                throw ValidationError(error.description)
            }
        }
        return settings
    }

    /// The settle timeout as a duration.
    var settleTimeout: Duration { .milliseconds(Int64(settleSeconds * 1000)) }
}
