#include "web/stream_browser.h"

#include <httplib.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/json_writer.h"
#include "inspect/event_json.h"

namespace kingest::web {
namespace {

using Clock = std::chrono::steady_clock;

struct UuidHash {
  size_t operator()(const Uuid& u) const {
    size_t h = 0;
    for (auto b : u.bytes()) h = h * 131 + b;
    return h;
  }
};

struct StreamInfo {
  uint64_t events = 0;
  uint64_t last_revision = 0;
  int64_t first_created = 0;
  int64_t last_created = 0;
};

struct EventRef {
  const std::string* stream;  // a key of Index::streams (stable)
  uint64_t revision;
};

// Streams and event ids, from $all, extended incrementally.
class Index {
 public:
  explicit Index(store::EventStore& store) : store_(store) {}

  absl::Status refresh() {
    std::lock_guard lock(mu_);
    for (;;) {
      auto page = store_.read_all(after_, kPage);
      if (!page.ok()) return page.status();
      for (const auto& e : *page) {
        auto [it, fresh] = streams_.try_emplace(e.stream);
        StreamInfo& s = it->second;
        if (fresh) s.first_created = e.created_ticks;
        ++s.events;
        s.last_revision = std::max(s.last_revision, e.revision.value());
        s.last_created = e.created_ticks;
        ids_[e.id] = EventRef{&it->first, e.revision.value()};
        after_ = e.position;
      }
      total_ += page->size();
      if (page->size() < kPage) break;
    }
    auto now = Clock::now();
    samples_.emplace_back(now, total_);
    while (samples_.size() > 2 && now - samples_[1].first > std::chrono::seconds(10)) samples_.pop_front();
    return absl::OkStatus();
  }

  // Streams whose names start with `prefix`, by name, at most `limit`; and how many matched.
  std::pair<std::vector<inspect::StreamSummary>, uint64_t> streams(const std::string& prefix, size_t limit) {
    std::lock_guard lock(mu_);
    std::vector<inspect::StreamSummary> out;
    uint64_t matched = 0;
    for (auto it = streams_.lower_bound(prefix); it != streams_.end() && it->first.starts_with(prefix); ++it) {
      if (prefix.empty() && it->first.starts_with("$")) continue;
      ++matched;
      if (out.size() < limit) {
        out.push_back({.stream = it->first, .events = it->second.events, .last_revision = it->second.last_revision,
                       .first_created_ticks = it->second.first_created, .last_created_ticks = it->second.last_created});
      }
    }
    return {std::move(out), matched};
  }

  std::optional<StreamInfo> stream(const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = streams_.find(name);
    if (it == streams_.end()) return std::nullopt;
    return it->second;
  }

  std::optional<std::pair<std::string, uint64_t>> find(const Uuid& id) {
    std::lock_guard lock(mu_);
    auto it = ids_.find(id);
    if (it == ids_.end()) return std::nullopt;
    return std::pair{*it->second.stream, it->second.revision};
  }

  struct Totals {
    uint64_t events = 0;
    uint64_t streams = 0;
    double append_rate = 0;  // events a second over the last ~10 s
  };
  Totals totals() {
    std::lock_guard lock(mu_);
    Totals t{.events = total_, .streams = streams_.size()};
    if (samples_.size() >= 2) {
      double dt = std::chrono::duration<double>(samples_.back().first - samples_.front().first).count();
      if (dt > 0) t.append_rate = double(samples_.back().second - samples_.front().second) / dt;
    }
    return t;
  }

 private:
  static constexpr uint64_t kPage = 65536;
  store::EventStore& store_;
  std::mutex mu_;
  uint64_t after_ = 0;
  uint64_t total_ = 0;
  std::map<std::string, StreamInfo> streams_;
  std::unordered_map<Uuid, EventRef, UuidHash> ids_;
  std::deque<std::pair<Clock::time_point, uint64_t>> samples_;
};

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(char(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string stream_link(const std::string& name) {
  return "<a href=\"/streams/" + url_encode(name) + "\">" + html_escape(name) + "</a>";
}

constexpr std::string_view kStyle = R"(
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}
header a{color:#cfe3ff;text-decoration:none;font-weight:600}header .brand{color:#fff;font-size:18px}
main{padding:16px 20px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e6ea;padding:6px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#eef1f5}pre{margin:0;font-size:12px;white-space:pre-wrap;word-break:break-all;max-width:60vw}
.num{text-align:right;font-variant-numeric:tabular-nums}form{margin:0 0 12px}input{padding:4px 8px}
dl{display:grid;grid-template-columns:max-content auto;gap:8px 24px;background:#fff;padding:16px;width:max-content}
dt{font-weight:600}.pager a{margin-right:16px}.muted{color:#6b7380})";

std::string page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         " - kurrent-ingest store</title><style>" + std::string(kStyle) +
         "</style></head><body><header><span class=\"brand\">kurrent-ingest store</span>"
         "<a href=\"/\" id=\"nav-streams\">Streams</a><a href=\"/stats\" id=\"nav-stats\">Statistics</a></header><main>" +
         body + "</main></body></html>";
}

RecordedEventData as_data(const store::RecordedEvent& e) {
  return RecordedEventData{.id = e.id, .revision = e.revision, .type = e.type, .content_type = e.content_type,
                           .data = e.data, .metadata = e.metadata, .stream = e.stream, .position = e.position,
                           .created_ticks = e.created_ticks};
}

std::string pretty_body(std::string_view text) {
  if (auto j = inspect::valid_json(text)) return html_escape(inspect::pretty_json(*j));
  if (simdjson::validate_utf8(text.data(), text.size())) return html_escape(text);
  return "<span class=\"muted\">(" + std::to_string(text.size()) + " bytes of binary data)</span>";
}

// A metadata field naming another event's id, linked to that event when the store holds it.
std::string id_link(Index& index, const std::string& metadata, const char* field) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(metadata).get(root) != simdjson::SUCCESS) return {};
  std::string_view v;
  if (root[field].get_string().get(v) != simdjson::SUCCESS) return {};
  auto id = Uuid::parse(v);
  std::string text = html_escape(v);
  if (id && index.find(*id)) return "<a class=\"link-" + std::string(field + 1) + "\" href=\"/events/" + id->to_string() + "\">" + text + "</a>";
  return text;
}

std::string database_size(const std::string& path, uint64_t* bytes) {
  *bytes = 0;
  if (path.empty()) return "in memory";
  std::error_code ec;
  for (const auto& p : {path, path + "-wal"}) {
    auto n = std::filesystem::file_size(p, ec);
    if (!ec) *bytes += n;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(*bytes) / (1024.0 * 1024.0));
  return buf;
}

class BrowserImpl final : public StreamBrowser {
 public:
  BrowserImpl(store::EventStore& store, BrowserOptions options) : store_(store), options_(std::move(options)), index_(store) {}
  ~BrowserImpl() override { stop(); }

  absl::Status start(const std::string& host, int port) {
    routes();
    if (port == 0) {
      port = server_.bind_to_any_port(host);
      if (port < 0) return absl::InvalidArgumentError("--http " + host + ":0: cannot bind");
    } else if (!server_.bind_to_port(host, port)) {
      return absl::InvalidArgumentError(absl::StrCat("--http ", host, ":", port, ": cannot bind (in use?)"));
    }
    address_ = host + ":" + std::to_string(port);
    // The first index read (all of $all) happens on the refresh thread, so a large store does not
    // hold up the command that starts the browser; the first request waits for it.
    http_ = std::thread([this] { server_.listen_after_bind(); });
    refresher_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stopping_) {
        lock.unlock();
        (void)index_.refresh();
        lock.lock();
        cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
    });
    return absl::OkStatus();
  }

  [[nodiscard]] std::string address() const override { return address_; }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    server_.stop();
    if (http_.joinable()) http_.join();
    if (refresher_.joinable()) refresher_.join();
  }

 private:
  static size_t param(const httplib::Request& req, const char* name, size_t fallback, size_t max) {
    size_t v = fallback;
    if (req.has_param(name) && !absl::SimpleAtoi(req.get_param_value(name), &v)) v = fallback;
    return std::min(v, max);
  }

  void routes() {
    server_.Get("/", [this](const httplib::Request& req, httplib::Response& res) { list_page(req, res); });
    server_.Get("/streams/(.+)", [this](const httplib::Request& req, httplib::Response& res) { stream_page(req, res, false); });
    server_.Get("/events/(.+)", [this](const httplib::Request& req, httplib::Response& res) { event_page(req, res, false); });
    server_.Get("/stats", [this](const httplib::Request&, httplib::Response& res) { stats(res, false); });
    server_.Get("/api/streams", [this](const httplib::Request& req, httplib::Response& res) { list_json(req, res); });
    server_.Get("/api/streams/(.+)", [this](const httplib::Request& req, httplib::Response& res) { stream_page(req, res, true); });
    server_.Get("/api/events/(.+)", [this](const httplib::Request& req, httplib::Response& res) { event_page(req, res, true); });
    server_.Get("/api/stats", [this](const httplib::Request&, httplib::Response& res) { stats(res, true); });
  }

  void list_json(const httplib::Request& req, httplib::Response& res) {
    (void)index_.refresh();
    auto [list, matched] = index_.streams(req.has_param("prefix") ? req.get_param_value("prefix") : "",
                                          param(req, "limit", 1000, 100000));
    JsonWriter w;
    w.begin_object().key("matched").value(matched).key("streams").begin_array();
    for (const auto& s : list) w.raw(inspect::summary_json(s));
    w.end_array().end_object();
    res.set_content(w.str(), "application/json");
  }

  void list_page(const httplib::Request& req, httplib::Response& res) {
    (void)index_.refresh();
    std::string prefix = req.has_param("prefix") ? req.get_param_value("prefix") : "";
    size_t limit = param(req, "limit", 500, 100000);
    auto [list, matched] = index_.streams(prefix, limit);
    std::string b = "<h1>Streams</h1><form method=\"get\" action=\"/\"><input id=\"prefix\" name=\"prefix\" "
                    "placeholder=\"stream name prefix\" value=\"" + html_escape(prefix) +
                    "\"> <button type=\"submit\">Search</button></form>";
    b += "<p id=\"matched\">" + std::to_string(matched) + " stream(s)" +
         (prefix.empty() ? std::string() : " starting with <code>" + html_escape(prefix) + "</code>") +
         (matched > list.size() ? ", the first " + std::to_string(list.size()) + " shown" : std::string()) + "</p>";
    b += "<table id=\"streams\"><thead><tr><th>Stream</th><th class=\"num\">Events</th><th class=\"num\">Last "
         "revision</th><th>Last event</th></tr></thead><tbody>";
    for (const auto& s : list) {
      b += "<tr class=\"stream\"><td class=\"name\">" + stream_link(s.stream) + "</td><td class=\"num events\">" +
           std::to_string(s.events) + "</td><td class=\"num\">" + std::to_string(s.last_revision) + "</td><td>" +
           inspect::ticks_to_iso8601(s.last_created_ticks) + "</td></tr>";
    }
    b += "</tbody></table>";
    res.set_content(page("Streams", b), "text/html; charset=utf-8");
  }

  void stream_page(const httplib::Request& req, httplib::Response& res, bool json) {
    (void)index_.refresh();
    const std::string name = req.matches[1];
    size_t count = param(req, "count", 50, 4096);
    store::ReadFrom from = store::ReadFrom::end();
    if (req.has_param("from")) {
      uint64_t r = 0;
      if (absl::SimpleAtoi(req.get_param_value("from"), &r)) from = store::ReadFrom::at(StreamRevision{r});
    }
    const bool forwards = req.has_param("direction") && req.get_param_value("direction") == "forwards";
    auto read = store_.read(name, forwards && from.kind == store::ReadFrom::Kind::kEnd ? store::ReadFrom::start() : from,
                            count, forwards ? store::ReadDirection::kForwards : store::ReadDirection::kBackwards);
    if (!read.ok()) {
      res.status = 500;
      res.set_content(std::string(read.status().message()), "text/plain");
      return;
    }
    if (!read->stream_found) {
      res.status = 404;
      if (json) {
        res.set_content(R"({"error":"no such stream"})", "application/json");
      } else {
        res.set_content(page(name, "<h1>" + html_escape(name) + "</h1><p id=\"not-found\">No such stream.</p>"),
                        "text/html; charset=utf-8");
      }
      return;
    }
    if (json) {
      JsonWriter w;
      w.begin_object().key("stream").value(name).key("deleted").value(read->stream_deleted).key("events").begin_array();
      for (const auto& e : read->events) w.raw(inspect::event_json(as_data(e)));
      w.end_array().end_object();
      res.set_content(w.str(), "application/json");
      return;
    }
    std::string b = "<h1 id=\"stream-name\">" + html_escape(name) + "</h1>";
    if (read->stream_deleted) b += "<p id=\"deleted\">This stream is deleted.</p>";
    b += "<p class=\"pager\">";
    if (!read->events.empty()) {
      uint64_t first = read->events.front().revision.value();
      uint64_t last = read->events.back().revision.value();
      uint64_t high = std::max(first, last);
      uint64_t low = std::min(first, last);
      std::string base = "/streams/" + url_encode(name) + "?count=" + std::to_string(count);
      b += "<a id=\"newest\" href=\"" + base + "\">Newest</a>";
      auto info = index_.stream(name);
      if (info && high < info->last_revision) {
        b += "<a id=\"newer\" href=\"" + base + "&amp;from=" + std::to_string(high + count) + "\">Newer</a>";
      }
      if (low > 0) b += "<a id=\"older\" href=\"" + base + "&amp;from=" + std::to_string(low - 1) + "\">Older</a>";
    }
    b += "</p><table id=\"events\"><thead><tr><th class=\"num\">Revision</th><th>Type</th><th>Created</th><th>Id</th>"
         "<th>Data</th><th>Metadata</th></tr></thead><tbody>";
    for (const auto& e : read->events) b += event_row(e);
    b += "</tbody></table>";
    res.set_content(page(name, b), "text/html; charset=utf-8");
  }

  std::string event_row(const store::RecordedEvent& e) {
    std::string corr = id_link(index_, e.metadata, "$correlationId");
    std::string caus = id_link(index_, e.metadata, "$causationId");
    std::string links;
    if (!corr.empty()) links += "<div>correlation: " + corr + "</div>";
    if (!caus.empty()) links += "<div>causation: " + caus + "</div>";
    return "<tr class=\"event\" id=\"rev-" + std::to_string(e.revision.value()) + "\"><td class=\"num revision\">" +
           std::to_string(e.revision.value()) + "</td><td class=\"type\">" + html_escape(e.type) + "</td><td>" +
           inspect::ticks_to_iso8601(e.created_ticks) + "</td><td class=\"id\"><a href=\"/events/" + e.id.to_string() +
           "\">" + e.id.to_string() + "</a></td><td><pre class=\"data\">" + pretty_body(e.data) + "</pre></td><td>" +
           links + "<pre class=\"metadata\">" + pretty_body(e.metadata) + "</pre></td></tr>";
  }

  void event_page(const httplib::Request& req, httplib::Response& res, bool json) {
    (void)index_.refresh();
    auto id = Uuid::parse(std::string(req.matches[1]));
    auto where = id ? index_.find(*id) : std::nullopt;
    std::optional<store::RecordedEvent> event;
    if (where) {
      auto r = store_.read(where->first, store::ReadFrom::at(StreamRevision{where->second}), 1,
                           store::ReadDirection::kForwards);
      if (r.ok() && !r->events.empty()) event = std::move(r->events.front());
    }
    if (!event) {
      res.status = 404;
      if (json) {
        res.set_content(R"({"error":"no such event"})", "application/json");
      } else {
        res.set_content(page("Event", "<p id=\"not-found\">No event with id " + html_escape(req.matches[1].str()) +
                                          ".</p>"),
                        "text/html; charset=utf-8");
      }
      return;
    }
    if (json) {
      res.set_content(inspect::event_json(as_data(*event)), "application/json");
      return;
    }
    std::string b = "<h1 id=\"event-id\">" + event->id.to_string() + "</h1><p>Revision " +
                    std::to_string(event->revision.value()) + " of " + stream_link(event->stream) +
                    "</p><table id=\"events\"><thead><tr><th class=\"num\">Revision</th><th>Type</th><th>Created</th>"
                    "<th>Id</th><th>Data</th><th>Metadata</th></tr></thead><tbody>" +
                    event_row(*event) + "</tbody></table>";
    res.set_content(page(event->id.to_string(), b), "text/html; charset=utf-8");
  }

  void stats(httplib::Response& res, bool json) {
    (void)index_.refresh();
    auto t = index_.totals();
    auto s = store_.stats();
    uint64_t bytes = 0;
    std::string size = database_size(options_.db_path, &bytes);
    if (json) {
      JsonWriter w;
      w.begin_object()
          .key("events").value(t.events)
          .key("streams").value(t.streams)
          .key("append_rate").value(t.append_rate)
          .key("database_bytes").value(bytes)
          .key("transactions").value(s.transactions)
          .key("appends").value(s.appends)
          .key("events_written").value(s.events_written)
          .end_object();
      res.set_content(w.str(), "application/json");
      return;
    }
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.1f events/s", t.append_rate);
    std::string b = "<h1>Statistics</h1><dl id=\"stats\">"
                    "<dt>Events</dt><dd id=\"stat-events\">" + std::to_string(t.events) + "</dd>"
                    "<dt>Streams</dt><dd id=\"stat-streams\">" + std::to_string(t.streams) + "</dd>"
                    "<dt>Append rate (last 10 s)</dt><dd id=\"stat-rate\">" + rate + "</dd>"
                    "<dt>Database size</dt><dd id=\"stat-size\">" + size + "</dd>"
                    "<dt>Since start: appends</dt><dd id=\"stat-appends\">" + std::to_string(s.appends) + "</dd>"
                    "<dt>Since start: transactions</dt><dd id=\"stat-transactions\">" + std::to_string(s.transactions) + "</dd>"
                    "<dt>Since start: events written</dt><dd id=\"stat-written\">" + std::to_string(s.events_written) +
                    "</dd></dl>";
    res.set_content(page("Statistics", b), "text/html; charset=utf-8");
  }

  store::EventStore& store_;
  BrowserOptions options_;
  Index index_;
  httplib::Server server_;
  std::string address_;
  std::thread http_;
  std::thread refresher_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StreamBrowser>> StreamBrowser::start(store::EventStore& store, const std::string& listen,
                                                                    BrowserOptions options) {
  std::string host = "127.0.0.1";
  std::string port_text = listen;
  if (auto colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError("--http '" + listen + "': expected HOST:PORT or PORT, e.g. 127.0.0.1:2114");
  }
  auto b = std::make_unique<BrowserImpl>(store, std::move(options));
  if (auto s = b->start(host, port); !s.ok()) return s;
  return b;
}

}  // namespace kingest::web
