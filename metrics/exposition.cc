#include "metrics/exposition.h"

#include <fmt/format.h>

#include <cmath>

namespace kingest::metrics {
namespace {

void escape_into(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole numbers as integers (counters compare exactly in tests and dashboards).
  if (v == std::floor(v) && std::fabs(v) < 9e15) return fmt::format("{}", int64_t(v));
  return fmt::format("{}", v);
}

std::string sample_name(std::string_view name, const Labels& labels) {
  std::string out(name);
  if (labels.empty()) return out;
  out += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first;
    out += "=\"";
    escape_into(out, labels[i].second, true);
    out += '"';
  }
  out += '}';
  return out;
}

Exposition::Family& Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{std::string(type), std::string(help), {}}).first;
  }
  return it->second;
}

void Exposition::declare(std::string_view name, std::string_view type, std::string_view help) {
  family(name, type, help);
}

void Exposition::counter(std::string_view name, std::string_view help, uint64_t value, const Labels& labels) {
  auto& f = family(name, "counter", help);
  f.samples += sample_name(name, labels) + " " + std::to_string(value) + "\n";
}

void Exposition::counter(std::string_view name, std::string_view help, double value, const Labels& labels) {
  auto& f = family(name, "counter", help);
  f.samples += sample_name(name, labels) + " " + format_value(value) + "\n";
}

void Exposition::gauge(std::string_view name, std::string_view help, double value, const Labels& labels) {
  auto& f = family(name, "gauge", help);
  f.samples += sample_name(name, labels) + " " + format_value(value) + "\n";
}

void Exposition::histogram(std::string_view name, std::string_view help, const HistogramSnapshot& h,
                           const Labels& labels) {
  auto& f = family(name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  for (const auto& [le, n] : h.buckets) {
    Labels with = labels;
    with.emplace_back("le", format_value(le));
    f.samples += sample_name(bucket, with) + " " + std::to_string(n) + "\n";
  }
  Labels inf = labels;
  inf.emplace_back("le", "+Inf");
  f.samples += sample_name(bucket, inf) + " " + std::to_string(h.count) + "\n";
  f.samples += sample_name(std::string(name) + "_sum", labels) + " " + format_value(h.sum) + "\n";
  f.samples += sample_name(std::string(name) + "_count", labels) + " " + std::to_string(h.count) + "\n";
}

std::string Exposition::text() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " ";
    escape_into(out, f.help, false);
    out += "\n# TYPE " + name + " " + f.type + "\n";
    out += f.samples;
  }
  return out;
}

void Registry::add(Collector collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  Exposition e;
  std::lock_guard lock(mu_);
  for (const auto& c : collectors_) c(e);
  return e.text();
}

}  // namespace kingest::metrics
