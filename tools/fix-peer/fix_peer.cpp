// fix-peer: a small FIX 4.4 acceptor that acts as an exchange, for FillGuard's integration tests.
//
// Built on QuickFIX (Debian's libquickfix-dev) with UseDataDictionary=Y, so every message FillGuard
// sends is validated against FIX44.xml. Orders are acknowledged at once; fills, rejects, delays,
// dropped connections, duplicate reports and malformed messages are triggered from the control
// channel: one command per line on standard input, one answer line per command ("OK ..." or
// "ERR ..."), listing lines before the answer where a command lists, and "EVENT ..." lines
// whenever something happens on the FIX session. See tools/fix-peer/README.md.
//
// With --auto-market SEED it also runs a market of its own: seeded random-walk prices per symbol
// on a timer, market orders filled at once, resting limits and stops filled (possibly partially)
// when the price crosses them, and market data (MarketDataRequest V -> snapshot W). A symbol's
// price moves while a market-data subscription for it is open (or after "market on"), so a client
// that unsubscribes gets a market that holds still.
//
// Usage: fix-peer --spec FIX44.xml --dir WORKDIR [--port N] [--sender EX] [--target FG]
//                 [--auto-market SEED] [--tick-ms N] [--volatility-bp N] [--partial-above QTY]
//                 [--partial-percent P] [--market-fills K] [--quiet] [--no-log] [--keep-running] [--remove-dir]

#include <quickfix/Application.h>
#include <quickfix/FileLog.h>
#include <quickfix/Message.h>
#include <quickfix/MessageStore.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>

// QuickFIX 1.15 declares exception specifications with throw(...), 1.16 with its EXCEPT macro.
#ifndef EXCEPT
#define EXCEPT(...) throw(__VA_ARGS__)
#endif

#include <quickfix/Group.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex outputMutex;

void say(const std::string& line) {
  std::lock_guard<std::mutex> lock(outputMutex);
  std::cout << line << std::endl;
}

// Exact decimals as integer units of 1e-8 (never floating point).
const int64_t kScale = 100000000;

bool parseDecimal(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  size_t i = 0;
  bool negative = false;
  if (text[0] == '-') { negative = true; i = 1; }
  int64_t whole = 0, fraction = 0;
  int fractionDigits = 0;
  bool point = false, digits = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') { if (point) return false; point = true; continue; }
    if (c < '0' || c > '9') return false;
    digits = true;
    if (point) {
      if (fractionDigits == 8) { if (c != '0') return false; continue; }
      fraction = fraction * 10 + (c - '0');
      ++fractionDigits;
    } else {
      whole = whole * 10 + (c - '0');
      if (whole > 1000000000000LL) return false;
    }
  }
  if (!digits) return false;
  while (fractionDigits < 8) { fraction *= 10; ++fractionDigits; }
  out = whole * kScale + fraction;
  if (negative) out = -out;
  return true;
}

std::string formatDecimal(int64_t units) {
  bool negative = units < 0;
  uint64_t magnitude = negative ? uint64_t(-units) : uint64_t(units);
  std::string text = std::to_string(magnitude / kScale);
  uint64_t fraction = magnitude % kScale;
  if (fraction != 0) {
    std::string digits = std::to_string(fraction);
    digits = std::string(8 - digits.size(), '0') + digits;
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    text += "." + digits;
  }
  return negative ? "-" + text : text;
}

struct Order {
  std::string root;      // the first ClOrdID (FillGuard's order id)
  std::string clOrdID;   // the current ClOrdID
  std::string brokerID;  // our OrderID (37)
  std::string symbol, side, ordType, timeInForce, price, stopPx;
  std::string account;   // Account (1) of the order, else the client's CompID
  int64_t quantity = 0, cumulative = 0;
  __int128 notional = 0;  // sum of lastQty * lastPx in 1e-16 units
  std::string status = "0";
  bool triggered = false;  // a stop whose price was reached
  bool terminal() const { return status == "2" || status == "4" || status == "8" || status == "C"; }
  int64_t leaves() const { return terminal() ? 0 : quantity - cumulative; }
  std::string averagePrice() const {
    if (cumulative == 0) return "0";
    __int128 average = notional / cumulative;  // 1e-8 units, truncated
    return formatDecimal(int64_t(average));
  }
};

// One symbol of the auto market: its price, the net of every fill, the orders that may still trade.
struct Book {
  int64_t price = 0;  // 1e-8 units
  int64_t net = 0;    // bought minus sold, 1e-8 units
  int subscriptions = 0;
  std::set<std::string> live;  // roots of orders that may still trade (terminal ones removed lazily)
};

// SplitMix64: seeded, so the same seed gives the same start prices and walks.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  int64_t between(int64_t low, int64_t high) { return low + int64_t(next() % uint64_t(high - low + 1)); }
};

uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) { hash ^= c; hash *= 1099511628211ULL; }
  return hash;
}

class Exchange : public FIX::Application {
 public:
  std::recursive_mutex mutex;
  // Auto market (--auto-market SEED).
  bool autoMarket = false;
  uint64_t marketSeed = 1;
  SplitMix64 marketRandom{1};
  int volatilityBasisPoints = 3;
  int64_t partialAbove = 100 * kScale;
  int partialPercent = 50;
  int marketFills = 1;           // executions a market order is filled in (all sent at once)
  std::string marketMode = "subscribed";  // which symbols move: subscribed, all, none
  bool quiet = false;            // no per-message EVENT lines
  std::map<std::string, Book> books;
  std::map<std::string, std::map<std::string, int64_t>> accountNets;  // account -> symbol -> net
  long long fillsExecuted = 0;
  FIX::SessionID sessionID;
  bool haveSession = false;
  std::map<std::string, Order> orders;            // by root
  std::map<std::string, std::string> rootByClOrdID;
  std::map<std::string, FIX::Message> sentReports;  // by ExecID, for "dup"
  std::vector<FIX::Message> held;                 // cancel/replace requests held by "hold on"
  bool holdRequests = false;
  bool rejectLogon = false;
  int rejectNextOrders = 0;
  int tooLateNext = 0;
  bool pendingAcks = false;
  int execCounter = 0, orderCounter = 0, positionReportCounter = 0;
  int logons = 0;

  // FIX::Application
  void onCreate(const FIX::SessionID& id) override {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    sessionID = id;
    haveSession = true;
  }
  void onLogon(const FIX::SessionID&) override {
    int count;
    { std::lock_guard<std::recursive_mutex> lock(mutex); count = ++logons; }
    say("EVENT logon " + std::to_string(count));
  }
  void onLogout(const FIX::SessionID&) override {
    // Market-data subscriptions belong to the session: a client that logs out, or is killed
    // without a Logout, leaves none behind (its symbols stop moving until it subscribes again).
    {
      std::lock_guard<std::recursive_mutex> lock(mutex);
      for (auto& entry : books) entry.second.subscriptions = 0;
    }
    say("EVENT logout");
  }
  void toAdmin(FIX::Message& message, const FIX::SessionID&) override {
    const std::string type = message.getHeader().getField(FIX::FIELD::MsgType);
    if (type == "2") say("EVENT sent-resend-request " + message.getField(7) + " " + message.getField(16));
    if (type == "3") {  // QuickFIX refused one of FillGuard's messages (data dictionary or session rules)
      std::string reason = message.isSetField(373) ? message.getField(373) : "";
      std::string tag = message.isSetField(371) ? message.getField(371) : "";
      std::string text = message.isSetField(58) ? message.getField(58) : "";
      say("EVENT sent-reject refseq=" + message.getField(45) + " reason=" + reason + " tag=" + tag + " text=" + text);
    }
    if (type == "5") say("EVENT sent-logout " + (message.isSetField(58) ? message.getField(58) : std::string()));
  }
  void toApp(FIX::Message& message, const FIX::SessionID&) EXCEPT(FIX::DoNotSend) override {
    const std::string type = message.getHeader().getField(FIX::FIELD::MsgType);
    if (type == "j") say("EVENT sent-business-reject " + (message.isSetField(58) ? message.getField(58) : std::string()));
  }
  void fromAdmin(const FIX::Message& message, const FIX::SessionID&)
      EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {
    const std::string type = message.getHeader().getField(FIX::FIELD::MsgType);
    if (type == "A") {
      bool reject;
      { std::lock_guard<std::recursive_mutex> lock(mutex); reject = rejectLogon; }
      if (reject) {
        say("EVENT logon-rejected");
        throw FIX::RejectLogon("logon refused by the test exchange");
      }
    } else if (type == "3") {
      std::string reason = message.isSetField(373) ? message.getField(373) : "";
      std::string tag = message.isSetField(371) ? message.getField(371) : "";
      say("EVENT reject refseq=" + message.getField(45) + " reason=" + reason + " tag=" + tag);
    } else if (type == "2") {
      say("EVENT resend-request " + message.getField(7) + " " + message.getField(16));
    } else if (type == "4") {
      say("EVENT sequence-reset " + message.getField(36) + (message.isSetField(123) ? " gapfill=" + message.getField(123) : ""));
    }
  }
  void fromApp(const FIX::Message& message, const FIX::SessionID&)
      EXCEPT(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::UnsupportedMessageType) override {
    const std::string type = message.getHeader().getField(FIX::FIELD::MsgType);
    const bool possDup = message.getHeader().isSetField(43) && message.getHeader().getField(43) == "Y";
    const bool possResend = message.getHeader().isSetField(97) && message.getHeader().getField(97) == "Y";
    std::string id = message.isSetField(11) ? message.getField(11) : (message.isSetField(584) ? message.getField(584) : "");
    if (!quiet) say("EVENT app " + type + " " + id + (possDup ? " possdup" : "") + (possResend ? " possresend" : ""));
    std::vector<FIX::Message> out;
    std::lock_guard<std::recursive_mutex> lock(mutex);
    if (type == "D") newOrder(message, possResend || possDup, out);
    else if (type == "F" || type == "G") {
      if (holdRequests) { held.push_back(message); say("EVENT held " + type + " " + id); }
      else cancelOrReplace(message, out);
    } else if (type == "H") statusRequest(message, out);
    else if (type == "AF") massStatus(message, out);
    else if (type == "V") marketDataRequest(message, out);
    else if (type == "AN") positionsRequest(message, out);
    else throw FIX::UnsupportedMessageType();
    send(out);
  }

  // Sends under the exchange lock, so reports leave in the order the exchange made them: a fill
  // made by the market timer never overtakes the answer to a request (QuickFIX calls the
  // application without its session lock held, and sending does not block on the socket).
  void send(std::vector<FIX::Message>& messages) {
    std::lock_guard<std::recursive_mutex> lock(mutex);
    if (!haveSession) return;
    for (auto& message : messages) FIX::Session::sendToTarget(message, sessionID);
  }

  // MARK: auto market

  Book& book(const std::string& symbol) {
    auto found = books.find(symbol);
    if (found != books.end()) return found->second;
    Book fresh;
    SplitMix64 start{marketSeed ^ fnv1a(symbol)};
    fresh.price = start.between(20, 500) * kScale;
    return books.emplace(symbol, fresh).first->second;
  }

  // Executes QTY of ORDER at PRICE: the order, the symbol's net and the fill report.
  FIX::Message execute(Order& order, int64_t quantity, int64_t price) {
    order.cumulative += quantity;
    order.notional += __int128(quantity) * price;
    order.status = order.cumulative == order.quantity ? "2" : "1";
    Book& symbolBook = book(order.symbol);
    symbolBook.net += order.side == "1" ? quantity : -quantity;
    accountNets[order.account][order.symbol] += order.side == "1" ? quantity : -quantity;
    ++fillsExecuted;
    FIX::Message fill = report(order, "F", order.clOrdID);
    fill.setField(32, formatDecimal(quantity));
    fill.setField(31, formatDecimal(price));
    return fill;
  }

  // Fills what the current price allows of one order (auto market only).
  void match(Order& order, std::vector<FIX::Message>& out) {
    if (order.terminal() || order.status == "8") return;
    Book& symbolBook = book(order.symbol);
    const int64_t price = symbolBook.price;
    const bool buy = order.side == "1";
    int64_t limit = 0, stop = 0;
    if (!order.price.empty()) parseDecimal(order.price, limit);
    if (!order.stopPx.empty()) parseDecimal(order.stopPx, stop);
    bool marketable = false;
    if (order.ordType == "1") {
      int64_t leaves = order.leaves();
      if (leaves <= 0) return;
      // A market order fills at once, in marketFills executions sent back to back.
      for (int part = marketFills; part >= 1 && leaves > 0; --part) {
        int64_t quantity = part == 1 ? leaves : (leaves / part) / kScale * kScale;
        if (quantity <= 0) continue;
        out.push_back(execute(order, quantity, price));
        leaves -= quantity;
      }
      return;
    } else if (order.ordType == "2") {
      marketable = buy ? price <= limit : price >= limit;
    } else if (order.ordType == "3" || order.ordType == "4") {
      if (!order.triggered) order.triggered = buy ? price >= stop : price <= stop;
      marketable = order.triggered && (order.ordType == "3" || (buy ? price <= limit : price >= limit));
    }
    if (!marketable) return;
    int64_t quantity = order.leaves();
    if (quantity > partialAbove && int(marketRandom.next() % 100) < partialPercent) {
      // A partial fill: about half, in whole shares, at least one share.
      quantity = std::max<int64_t>(kScale, (quantity / 2) / kScale * kScale);
    }
    out.push_back(execute(order, quantity, price));
  }

  // One tick: moving symbols take a random step and their crossed orders fill.
  void tick(std::vector<FIX::Message>& out) {
    if (marketMode == "none") return;
    for (auto& entry : books) {
      Book& symbolBook = entry.second;
      if (marketMode == "subscribed" && symbolBook.subscriptions == 0) continue;
      const int64_t bound = volatilityBasisPoints;
      const int64_t basisPoints = bound == 0 ? 0 : marketRandom.between(-bound, bound);
      symbolBook.price = std::max<int64_t>(kScale / 100, symbolBook.price + symbolBook.price / 10000 * basisPoints);
      for (auto it = symbolBook.live.begin(); it != symbolBook.live.end();) {
        auto found = orders.find(*it);
        if (found == orders.end() || found->second.terminal() || found->second.status == "8") { it = symbolBook.live.erase(it); continue; }
        match(found->second, out);
        ++it;
      }
    }
  }

  FIX::Message snapshot(const std::string& requestID, const std::string& symbol) {
    FIX::Message message;
    message.getHeader().setField(FIX::FIELD::MsgType, "W");
    message.setField(262, requestID);
    message.setField(55, symbol);
    FIX::Group entry(268, 269);
    entry.setField(269, "2");  // Trade
    entry.setField(270, formatDecimal(book(symbol).price));
    message.addGroup(entry);
    return message;
  }

  // MarketDataRequest (V): 263=0 snapshot, 1 snapshot and subscribe (the symbol starts moving),
  // 2 unsubscribe (no answer). Without the auto market: MarketDataRequestReject (Y).
  void marketDataRequest(const FIX::Message& message, std::vector<FIX::Message>& out) {
    const std::string requestID = message.getField(262);
    const std::string kind = message.getField(263);
    if (!autoMarket) {
      FIX::Message reject;
      reject.getHeader().setField(FIX::FIELD::MsgType, "Y");
      reject.setField(262, requestID);
      reject.setField(281, "0");
      reject.setField(58, "no market data: the test exchange runs without --auto-market");
      out.push_back(reject);
      return;
    }
    std::vector<std::string> symbols;
    FIX::Group related(146, 55);
    int count = message.isSetField(146) ? std::atoi(message.getField(146).c_str()) : 0;
    for (int i = 1; i <= count; ++i) {
      message.getGroup(i, related);
      symbols.push_back(related.getField(55));
    }
    for (const std::string& symbol : symbols) {
      Book& symbolBook = book(symbol);
      if (kind == "1") {
        ++symbolBook.subscriptions;
        if (!quiet) say("EVENT subscribed " + symbol);
      }
      if (kind == "2") symbolBook.subscriptions = std::max(0, symbolBook.subscriptions - 1);
      if (kind != "2") out.push_back(snapshot(requestID, symbol));
    }
  }

  FIX::Message report(const Order& order, const std::string& execType, const std::string& clOrdID) {
    FIX::Message message;
    message.getHeader().setField(FIX::FIELD::MsgType, "8");
    message.setField(37, order.brokerID);
    message.setField(11, clOrdID);
    if (clOrdID != order.root && order.clOrdID != clOrdID) message.setField(41, order.clOrdID);
    std::string execID = "X" + std::to_string(++execCounter);
    message.setField(17, execID);
    message.setField(150, execType);
    message.setField(39, order.status);
    message.setField(55, order.symbol);
    message.setField(54, order.side);
    message.setField(38, formatDecimal(order.quantity));
    message.setField(40, order.ordType);
    if (!order.price.empty()) message.setField(44, order.price);
    if (!order.stopPx.empty()) message.setField(99, order.stopPx);
    if (!order.timeInForce.empty()) message.setField(59, order.timeInForce);
    message.setField(151, formatDecimal(order.leaves()));
    message.setField(14, formatDecimal(order.cumulative));
    message.setField(6, order.averagePrice());
    message.setField(60, FIX::UtcTimeStampConvertor::convert(FIX::UtcTimeStamp(), 3));
    if (!autoMarket) sentReports[execID] = message;  // for "dup"; the auto market makes too many
    return message;
  }

  void newOrder(const FIX::Message& message, bool repeat, std::vector<FIX::Message>& out) {
    std::string clOrdID = message.getField(11);
    auto known = rootByClOrdID.find(clOrdID);
    if (known != rootByClOrdID.end()) {
      if (repeat) {  // PossResend/PossDup of an order we have: answer with its state again
        Order& order = orders[known->second];
        out.push_back(report(order, order.status == "8" ? "8" : "0", clOrdID));
      } else {
        Order dummy;
        dummy.root = clOrdID; dummy.clOrdID = clOrdID; dummy.brokerID = "NONE"; dummy.status = "8";
        dummy.symbol = message.getField(55); dummy.side = message.getField(54); dummy.ordType = message.getField(40);
        FIX::Message reject = report(dummy, "8", clOrdID);
        reject.setField(103, "6");  // duplicate order
        reject.setField(58, "duplicate ClOrdID");
        out.push_back(reject);
      }
      return;
    }
    Order order;
    order.root = clOrdID;
    order.clOrdID = clOrdID;
    order.brokerID = "B" + std::to_string(++orderCounter);
    order.symbol = message.getField(55);
    order.side = message.getField(54);
    order.ordType = message.getField(40);
    order.account = message.isSetField(1) ? message.getField(1) : sessionID.getTargetCompID().getValue();
    order.timeInForce = message.isSetField(59) ? message.getField(59) : "0";
    if (message.isSetField(44)) order.price = message.getField(44);
    if (message.isSetField(99)) order.stopPx = message.getField(99);
    if (!message.isSetField(38) || !parseDecimal(message.getField(38), order.quantity) || order.quantity <= 0) {
      order.status = "8";
      FIX::Message reject = report(order, "8", clOrdID);
      reject.setField(58, "bad OrderQty");
      out.push_back(reject);
      return;
    }
    if (rejectNextOrders > 0) {
      --rejectNextOrders;
      order.status = "8";
      FIX::Message reject = report(order, "8", clOrdID);
      reject.setField(103, "0");
      reject.setField(58, "rejected by the test exchange");
      orders[order.root] = order;
      rootByClOrdID[clOrdID] = order.root;
      out.push_back(reject);
      return;
    }
    if (pendingAcks) { order.status = "A"; out.push_back(report(order, "A", clOrdID)); }
    order.status = "0";
    orders[order.root] = order;
    rootByClOrdID[clOrdID] = order.root;
    out.push_back(report(order, "0", clOrdID));
    if (autoMarket) {
      Order& placed = orders[order.root];
      book(placed.symbol).live.insert(placed.root);
      match(placed, out);
    }
  }

  FIX::Message cancelReject(const std::string& clOrdID, const std::string& origClOrdID, const std::string& status,
                            const std::string& brokerID, const std::string& responseTo, const std::string& reason,
                            const std::string& text) {
    FIX::Message message;
    message.getHeader().setField(FIX::FIELD::MsgType, "9");
    message.setField(37, brokerID);
    message.setField(11, clOrdID);
    message.setField(41, origClOrdID);
    message.setField(39, status);
    message.setField(434, responseTo);
    message.setField(102, reason);
    message.setField(58, text);
    say("EVENT cancel-reject " + clOrdID + " reason=" + reason);
    return message;
  }

  void cancelOrReplace(const FIX::Message& message, std::vector<FIX::Message>& out) {
    const std::string type = message.getHeader().getField(FIX::FIELD::MsgType);
    const std::string responseTo = type == "F" ? "1" : "2";
    std::string clOrdID = message.getField(11);
    std::string orig = message.getField(41);
    auto known = rootByClOrdID.find(orig);
    if (known == rootByClOrdID.end()) {
      out.push_back(cancelReject(clOrdID, orig, "8", "NONE", responseTo, "1", "unknown order"));
      return;
    }
    Order& order = orders[known->second];
    if (rootByClOrdID.count(clOrdID)) {  // a repeat of a request we already answered
      const bool possResend = message.getHeader().isSetField(97);
      if (possResend && order.clOrdID == clOrdID) {
        out.push_back(report(order, type == "F" ? "4" : "5", clOrdID));
        return;
      }
    }
    if (order.terminal() || tooLateNext > 0) {
      if (!order.terminal()) --tooLateNext;
      out.push_back(cancelReject(clOrdID, orig, order.status, order.brokerID, responseTo, "0",
                                 order.status == "2" ? "too late: order filled" : "too late to cancel"));
      return;
    }
    if (orig != order.clOrdID) {
      out.push_back(cancelReject(clOrdID, orig, order.status, order.brokerID, responseTo, "1", "OrigClOrdID is not the current ClOrdID"));
      return;
    }
    rootByClOrdID[clOrdID] = order.root;
    if (type == "F") {
      if (pendingAcks) { std::string s = order.status; order.status = "6"; out.push_back(report(order, "6", clOrdID)); order.status = s; }
      order.clOrdID = clOrdID;
      order.status = "4";
      out.push_back(report(order, "4", clOrdID));
      return;
    }
    int64_t quantity = 0;
    if (!message.isSetField(38) || !parseDecimal(message.getField(38), quantity) || quantity <= 0 || quantity < order.cumulative) {
      out.push_back(cancelReject(clOrdID, orig, order.status, order.brokerID, responseTo, "99", "bad OrderQty"));
      return;
    }
    if (pendingAcks) { std::string s = order.status; order.status = "E"; out.push_back(report(order, "E", clOrdID)); order.status = s; }
    FIX::Message replaced;
    order.clOrdID = clOrdID;
    order.quantity = quantity;
    if (message.isSetField(44)) order.price = message.getField(44);
    if (message.isSetField(99)) order.stopPx = message.getField(99);
    if (order.cumulative == order.quantity) order.status = "2";
    FIX::Message answer = report(order, "5", clOrdID);
    answer.setField(41, orig);
    out.push_back(answer);
  }

  // OrderStatusRequest (H): the order found by ClOrdID (any of its chain), else by OrderID (37).
  // An unknown order is answered ExecType I, OrdStatus 8 (rejected), OrdRejReason 5 (unknown
  // order), OrderID NONE.
  void statusRequest(const FIX::Message& message, std::vector<FIX::Message>& out) {
    std::string clOrdID = message.getField(11);
    Order* order = find(clOrdID);
    if (!order && message.isSetField(37)) {
      const std::string brokerID = message.getField(37);
      for (auto& entry : orders)
        if (entry.second.brokerID == brokerID) { order = &entry.second; break; }
    }
    FIX::Message answer;
    if (!order) {
      Order unknown;
      unknown.root = clOrdID; unknown.clOrdID = clOrdID; unknown.brokerID = "NONE"; unknown.status = "8";
      unknown.symbol = message.getField(55); unknown.side = message.getField(54); unknown.ordType = "1";
      answer = report(unknown, "I", clOrdID);
      answer.setField(103, "5");
      answer.setField(58, "unknown order");
    } else {
      answer = report(*order, "I", order->clOrdID);
    }
    if (message.isSetField(790)) answer.setField(790, message.getField(790));
    out.push_back(answer);
  }

  void massStatus(const FIX::Message& message, std::vector<FIX::Message>& out) {
    std::string id = message.getField(584);
    std::vector<Order*> list;
    for (auto& entry : orders) list.push_back(&entry.second);
    if (list.empty()) {
      Order none;
      none.root = "NONE"; none.clOrdID = "NONE"; none.brokerID = "NONE"; none.status = "8"; none.symbol = "NONE"; none.side = "1";
      none.ordType = "1";
      FIX::Message answer = report(none, "I", "NONE");
      answer.setField(584, id);
      answer.setField(911, "0");
      answer.setField(912, "Y");
      out.push_back(answer);
      return;
    }
    for (size_t i = 0; i < list.size(); ++i) {
      FIX::Message answer = report(*list[i], "I", list[i]->clOrdID);
      answer.setField(584, id);
      answer.setField(911, std::to_string(list.size()));
      answer.setField(912, i + 1 == list.size() ? "Y" : "N");
      out.push_back(answer);
    }
  }

  // RequestForPositions (AN): a RequestForPositionsAck (AO) with the number of reports, then one
  // PositionReport (AP) per symbol whose net in the request's Account (1) (from the fills of that
  // account's orders; an order without Account is the client CompID's) is not zero, as a TQ (transaction
  // quantity) entry of LongQty or ShortQty. No positions: AO with PosReqResult 2. Settlement prices
  // are the symbol's current price, marked theoretical. Parties, Account and AccountType are echoed.
  void positionsRequest(const FIX::Message& message, std::vector<FIX::Message>& out) {
    const std::string requestID = message.getField(710);
    std::vector<std::pair<std::string, int64_t>> nets;
    const std::string account = message.isSetField(1) ? message.getField(1) : sessionID.getTargetCompID().getValue();
    for (auto& entry : accountNets[account])
      if (entry.second != 0) nets.emplace_back(entry.first, entry.second);
    auto echo = [&message](FIX::Message& answer) {
      if (message.isSetField(453)) {
        FIX::Group party(453, 448);
        int count = std::atoi(message.getField(453).c_str());
        for (int i = 1; i <= count; ++i) {
          message.getGroup(i, party);
          answer.addGroup(party);
        }
      }
      answer.setField(1, message.getField(1));
      answer.setField(581, message.getField(581));
    };
    FIX::Message ack;
    ack.getHeader().setField(FIX::FIELD::MsgType, "AO");
    ack.setField(721, "PA" + std::to_string(++positionReportCounter));
    ack.setField(710, requestID);
    ack.setField(727, std::to_string(nets.size()));
    ack.setField(728, nets.empty() ? "2" : "0");
    ack.setField(729, "0");
    echo(ack);
    out.push_back(ack);
    for (auto& net : nets) {
      FIX::Message report;
      report.getHeader().setField(FIX::FIELD::MsgType, "AP");
      report.setField(721, "PR" + std::to_string(++positionReportCounter));
      report.setField(710, requestID);
      report.setField(724, "0");
      report.setField(727, std::to_string(nets.size()));
      report.setField(728, "0");
      report.setField(715, message.getField(715));
      echo(report);
      report.setField(55, net.first);
      const std::string price = formatDecimal(book(net.first).price);
      report.setField(730, price);
      report.setField(731, "2");
      report.setField(734, price);
      FIX::Group position(702, 703);
      position.setField(703, "TQ");
      position.setField(704, formatDecimal(net.second > 0 ? net.second : 0));
      position.setField(705, formatDecimal(net.second < 0 ? -net.second : 0));
      report.addGroup(position);
      out.push_back(report);
    }
  }

  Order* find(const std::string& id) {
    auto known = rootByClOrdID.find(id);
    if (known == rootByClOrdID.end()) return nullptr;
    return &orders[known->second];
  }
};

int listenPort = 0;

// Cuts every accepted FIX connection as a network failure would. Session::disconnect() from this
// thread races QuickFIX's socket thread (seen crashing under load), so the socket is shut down
// instead and QuickFIX notices the failure on its own thread.
int dropConnections() {
  int dropped = 0;
  for (int fd = 3; fd < 65536; ++fd) {
    sockaddr_in local{}, remote{};
    socklen_t localLength = sizeof(local), remoteLength = sizeof(remote);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) != 0) continue;
    if (local.sin_family != AF_INET || ntohs(local.sin_port) != listenPort) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remoteLength) != 0) continue;
    if (shutdown(fd, SHUT_RDWR) == 0) ++dropped;
  }
  return dropped;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream stream(line);
  std::vector<std::string> out;
  std::string word;
  while (stream >> word) out.push_back(word);
  return out;
}

// One control command; returns the answer line.
std::string command(Exchange& exchange, FIX::SessionID& id, const std::vector<std::string>& args) {
  const std::string& verb = args[0];
  std::vector<FIX::Message> out;
  std::string answer = "OK";
  {
    std::lock_guard<std::recursive_mutex> lock(exchange.mutex);
    if (verb == "fill") {  // fill ORDER QTY PRICE
      if (args.size() != 4) return "ERR usage: fill ORDER QTY PRICE";
      Order* order = exchange.find(args[1]);
      if (!order) return "ERR unknown order " + args[1];
      int64_t quantity, price;
      if (!parseDecimal(args[2], quantity) || quantity <= 0) return "ERR bad quantity";
      if (!parseDecimal(args[3], price) || price <= 0) return "ERR bad price";
      if (order->terminal()) return "ERR order " + args[1] + " is done (" + order->status + ")";
      if (quantity > order->leaves()) return "ERR fill above leaves " + formatDecimal(order->leaves());
      FIX::Message fill = exchange.execute(*order, quantity, price);
      answer = "OK " + fill.getField(17);
      out.push_back(fill);
    } else if (verb == "cancel") {  // cancel ORDER: an unsolicited cancel by the exchange
      if (args.size() != 2) return "ERR usage: cancel ORDER";
      Order* order = exchange.find(args[1]);
      if (!order) return "ERR unknown order " + args[1];
      if (order->terminal()) return "ERR order is done";
      order->status = "4";
      FIX::Message cancel = exchange.report(*order, "4", order->clOrdID);
      cancel.setField(58, "cancelled by the exchange");
      out.push_back(cancel);
    } else if (verb == "dup") {  // dup EXECID: send that execution report again (same ExecID)
      if (args.size() != 2) return "ERR usage: dup EXECID";
      auto found = exchange.sentReports.find(args[1]);
      if (found == exchange.sentReports.end()) return "ERR unknown ExecID";
      FIX::Message again = found->second;
      again.getHeader().removeField(34);
      again.getHeader().removeField(52);
      out.push_back(again);
    } else if (verb == "malformed") {  // an execution report with a duplicate tag (Text twice)
      Order dummy;
      dummy.root = "MALFORMED"; dummy.clOrdID = "MALFORMED"; dummy.brokerID = "NONE"; dummy.symbol = "NONE"; dummy.side = "1";
      dummy.ordType = "1"; dummy.status = "0";
      FIX::Message bad = exchange.report(dummy, "0", "MALFORMED");
      bad.setField(FIX::StringField(58, "first"));
      bad.setField(FIX::StringField(58, "second"), false);
      out.push_back(bad);
    } else if (verb == "orders") {
      std::string lines;
      for (auto& entry : exchange.orders) {
        const Order& o = entry.second;
        lines += "ORDER " + o.root + " " + o.clOrdID + " " + o.symbol + " " + o.side + " " + o.ordType + " " + formatDecimal(o.quantity) +
                 " " + formatDecimal(o.cumulative) + " " + formatDecimal(o.leaves()) + " " + o.status + "\n";
      }
      answer = lines + "OK " + std::to_string(exchange.orders.size());
    } else if (verb == "market") {  // market subscribed|all|none: which symbols' prices move
      if (args.size() != 2 || (args[1] != "subscribed" && args[1] != "all" && args[1] != "none"))
        return "ERR usage: market subscribed|all|none";
      exchange.marketMode = args[1];
    } else if (verb == "price") {  // price SYMBOL [PRICE]: read or set a price (crossed orders fill)
      if (args.size() != 2 && args.size() != 3) return "ERR usage: price SYMBOL [PRICE]";
      Book& book = exchange.book(args[1]);
      if (args.size() == 3) {
        int64_t price;
        if (!parseDecimal(args[2], price) || price <= 0) return "ERR bad price";
        book.price = price;
        if (exchange.autoMarket) {
          for (const std::string& root : book.live) {
            auto found = exchange.orders.find(root);
            if (found != exchange.orders.end()) exchange.match(found->second, out);
          }
        }
      }
      answer = "OK " + formatDecimal(book.price);
    } else if (verb == "positions") {  // POSITION SYMBOL NET PRICE lines, net from every fill
      std::string lines;
      for (auto& entry : exchange.books)
        lines += "POSITION " + entry.first + " " + formatDecimal(entry.second.net) + " " + formatDecimal(entry.second.price) + "\n";
      answer = lines + "OK " + std::to_string(exchange.books.size()) + " fills=" + std::to_string(exchange.fillsExecuted);
    } else if (verb == "reject-logon") {
      exchange.rejectLogon = args.size() > 1 && args[1] == "on";
    } else if (verb == "reject-orders") {  // reject-orders N: the next N new orders are rejected
      exchange.rejectNextOrders = args.size() > 1 ? std::atoi(args[1].c_str()) : 1;
    } else if (verb == "too-late") {  // too-late N: the next N cancel/replace requests are refused as too late
      exchange.tooLateNext = args.size() > 1 ? std::atoi(args[1].c_str()) : 1;
    } else if (verb == "pending") {
      exchange.pendingAcks = args.size() > 1 && args[1] == "on";
    } else if (verb == "hold") {
      exchange.holdRequests = args.size() > 1 && args[1] == "on";
    } else if (verb == "release") {  // answer held cancel/replace requests now
      std::vector<FIX::Message> held;
      held.swap(exchange.held);
      for (auto& message : held) exchange.cancelOrReplace(message, out);
      answer = "OK " + std::to_string(held.size());
    } else if (verb == "drop") {  // drop the connection without Logout
      // handled below, outside the lock
    } else if (verb == "expect-target") {  // expect-target N: pretend we last saw their N-1, forcing a resend
      // handled below, outside the lock
    } else if (verb == "logout") {
    } else if (verb == "seqnums") {
    } else if (verb == "ping") {
    } else {
      return "ERR unknown command " + verb;
    }
  }
  FIX::Session* session = FIX::Session::lookupSession(id);
  if (verb == "drop") {
    answer = "OK " + std::to_string(dropConnections());
  } else if (verb == "logout") {
    if (!session) return "ERR no session";
    session->logout("logout requested by the test");
  } else if (verb == "expect-target") {
    if (!session || args.size() != 2) return "ERR usage: expect-target N";
    session->setNextTargetMsgSeqNum(std::atoi(args[1].c_str()));
  } else if (verb == "seqnums") {
    if (!session) return "ERR no session";
    answer = "OK " + std::to_string(session->getExpectedSenderNum()) + " " + std::to_string(session->getExpectedTargetNum());
  }
  exchange.send(out);
  return answer;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec, dir, sender = "EX", target = "FG";
  int port = 0, tickMicros = 1000;
  bool noLog = false, keepRunning = false, removeDir = false, usage = false;
  Exchange exchange;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--quiet") { exchange.quiet = true; continue; }
    if (flag == "--no-log") { noLog = true; continue; }
    if (flag == "--keep-running") { keepRunning = true; continue; }
    if (flag == "--remove-dir") { removeDir = true; continue; }
    if (i + 1 >= argc) { usage = true; break; }
    std::string value = argv[++i];
    if (flag == "--spec") spec = value;
    else if (flag == "--dir") dir = value;
    else if (flag == "--port") port = std::atoi(value.c_str());
    else if (flag == "--sender") sender = value;
    else if (flag == "--target") target = value;
    else if (flag == "--auto-market") {
      exchange.autoMarket = true;
      exchange.marketSeed = std::strtoull(value.c_str(), nullptr, 10);
      exchange.marketRandom.state = exchange.marketSeed * 0x2545F4914F6CDD1DULL + 1;
    } else if (flag == "--tick-ms") tickMicros = int(std::atof(value.c_str()) * 1000);
    else if (flag == "--volatility-bp") exchange.volatilityBasisPoints = std::atoi(value.c_str());
    else if (flag == "--partial-above") { if (!parseDecimal(value, exchange.partialAbove)) usage = true; }
    else if (flag == "--partial-percent") exchange.partialPercent = std::atoi(value.c_str());
    else if (flag == "--market-fills") exchange.marketFills = std::max(1, std::atoi(value.c_str()));
    else usage = true;
  }
  if (usage || spec.empty() || dir.empty() || tickMicros < 1) {
    std::cerr << "usage: fix-peer --spec FIX44.xml --dir WORKDIR [--port N] [--sender EX] [--target FG]\n"
                 "                [--auto-market SEED] [--tick-ms N] [--volatility-bp N] [--partial-above QTY]\n"
                 "                [--partial-percent P] [--market-fills K] [--quiet] [--no-log] [--keep-running] [--remove-dir]" << std::endl;
    return 2;
  }
  std::mt19937 random(std::random_device{}());
  // Declared before the acceptor so they outlive it.
  std::unique_ptr<FIX::SessionSettings> settings;
  std::unique_ptr<FIX::MemoryStoreFactory> storeFactory(new FIX::MemoryStoreFactory());
  std::unique_ptr<FIX::FileLogFactory> logFactory;
  std::unique_ptr<FIX::SocketAcceptor> acceptor;
  for (int attempt = 0; attempt < 50 && !acceptor; ++attempt) {
    int candidate = port ? port : 20000 + int(random() % 40000);
    std::stringstream text;
    text << "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort=" << candidate << "\nSocketReuseAddress=Y\n"
         << "StartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\nDataDictionary=" << spec << "\n"
         << "ValidateUserDefinedFields=Y\nValidateFieldsOutOfOrder=Y\nValidateFieldsHaveValues=Y\nAllowUnknownMsgFields=N\n"
         << "ResetOnLogon=N\nResetOnLogout=N\nResetOnDisconnect=N\nPersistMessages=Y\nCheckLatency=Y\nMaxLatency=120\n"
         << "FileLogPath=" << dir << "/log\n"
         << "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=" << sender << "\nTargetCompID=" << target << "\n";
    try {
      acceptor.reset();
      settings.reset(new FIX::SessionSettings(text));
      std::unique_ptr<FIX::SocketAcceptor> candidateAcceptor;
      if (noLog) {
        candidateAcceptor.reset(new FIX::SocketAcceptor(exchange, *storeFactory, *settings));
      } else {
        logFactory.reset(new FIX::FileLogFactory(*settings));
        candidateAcceptor.reset(new FIX::SocketAcceptor(exchange, *storeFactory, *settings, *logFactory));
      }
      candidateAcceptor->start();
      acceptor = std::move(candidateAcceptor);
      port = candidate;
    } catch (FIX::Exception& error) {
      if (port && attempt == 0 && argc > 0) {
        std::cerr << "fix-peer: cannot listen on " << candidate << ": " << error.what() << std::endl;
        return 1;
      }
    }
  }
  if (!acceptor) {
    std::cerr << "fix-peer: no free port found" << std::endl;
    return 1;
  }
  listenPort = port;
  FIX::SessionID id("FIX.4.4", sender, target);
  std::atomic<bool> running(true);
  std::thread ticker;
  if (exchange.autoMarket) {
    ticker = std::thread([&exchange, &running, tickMicros] {
      while (running.load()) {
        std::this_thread::sleep_for(std::chrono::microseconds(tickMicros));
        std::vector<FIX::Message> out;
        std::lock_guard<std::recursive_mutex> lock(exchange.mutex);
        exchange.tick(out);
        exchange.send(out);
      }
    });
  }
  say("READY " + std::to_string(port));
  std::string line;
  bool quit = false;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> args = words(line);
    if (args.empty()) continue;
    if (args[0] == "quit") { quit = true; break; }
    std::string answer;
    try {
      answer = command(exchange, id, args);
    } catch (std::exception& error) {
      answer = std::string("ERR ") + error.what();
    }
    say(answer);
  }
  // Standard input ended without "quit": with --keep-running, serve until killed.
  while (keepRunning && !quit) std::this_thread::sleep_for(std::chrono::seconds(3600));
  running = false;
  if (ticker.joinable()) ticker.join();
  acceptor->stop(true);
  // A work directory of its own (a launcher's temporary one): gone with it, also when the launcher
  // died and standard input ended without "quit".
  if (removeDir) {
    nftw(dir.c_str(), [](const char* path, const struct stat*, int, struct FTW*) { ::remove(path); return 0; },
         16, FTW_DEPTH | FTW_PHYS);
  }
  say("BYE");
  return 0;
}
