#include "cli/config.h"

#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace kingest::cli {
namespace {

constexpr const char* kConfig = "--config";
constexpr const char* kPrintConfig = "--print-config";

std::string where(const std::string& file, const toml::source_region& src) {
  return "--config " + file + ":" + std::to_string(src.begin.line);
}

// ${NAME} → the environment's NAME; an unset variable is an error.
absl::StatusOr<std::string> substitute_env(const std::string& text, const std::string& at) {
  static const std::regex ref(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
  std::string out;
  auto begin = std::sregex_iterator(text.begin(), text.end(), ref);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1].str();
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      return absl::InvalidArgumentError(at + ": ${" + name + "} is not set in the environment");
    }
    out += text.substr(last, size_t(it->position()) - last);
    out += value;
    last = size_t(it->position() + it->length());
  }
  out += text.substr(last);
  return out;
}

// One TOML value as the text a flag takes.
absl::StatusOr<std::string> value_text(const toml::node& node, const std::string& key, const std::string& at) {
  if (auto s = node.as_string()) return substitute_env(s->get(), at);
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto f = node.as_floating_point()) {
    std::ostringstream ss;
    ss << f->get();
    return ss.str();
  }
  if (auto b = node.as_boolean()) return std::string(b->get() ? "true" : "false");
  if (node.is_date_time() || node.is_date() || node.is_time()) {
    std::ostringstream ss;
    if (auto dt = node.as_date_time()) ss << dt->get();
    if (auto d = node.as_date()) ss << d->get();
    if (auto t = node.as_time()) ss << t->get();
    return ss.str();
  }
  return absl::InvalidArgumentError(at + ": key '" + key + "' takes a string, number, boolean or a list of them");
}

// The options the user named on the command line (after the subcommand).
std::set<const CLI::Option*> given_options(CLI::App& cmd, const std::vector<std::string>& args, size_t from) {
  std::set<const CLI::Option*> given;
  for (size_t i = from; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue;
    std::string name = a.substr(0, a.find('='));
    if (name.size() > 2 && name[1] != '-') name = name.substr(0, 2);  // -Xkey=value
    if (auto* opt = cmd.get_option_no_throw(name)) given.insert(opt);
  }
  return given;
}

bool is_flag(const CLI::Option* opt) { return opt->get_type_size() == 0; }

std::string toml_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && s.find_first_not_of("0123456789.-+eE") == std::string::npos;
}

std::string toml_value(const std::string& s) { return is_number(s) || s == "true" || s == "false" ? s : toml_quote(s); }

}  // namespace

void add_config_flags(CLI::App& app) {
  // Read by expand_config before parsing; declared so that help lists them and parsing accepts them.
  static std::string config_file;
  static bool print_config = false;
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->add_option(std::string(kConfig), config_file,
                    "TOML job file: keys are this command's flags without the dashes; flags override it; ${NAME} "
                    "takes the environment variable NAME");
    sub->add_flag(std::string(kPrintConfig), print_config,
                  "Print the effective configuration (file, flags, defaults) as TOML, passwords masked, and exit");
  }
}

absl::StatusOr<std::vector<std::string>> expand_config(CLI::App& app, const std::vector<std::string>& args) {
  // The subcommand: the first word that is not an option of the app itself or its value.
  size_t sub_at = args.size();
  CLI::App* cmd = nullptr;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.starts_with("-")) {
      auto* opt = app.get_option_no_throw(a.substr(0, a.find('=')));
      if (opt != nullptr && !is_flag(opt) && a.find('=') == std::string::npos) ++i;  // its value
      continue;
    }
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (sub->check_name(a)) cmd = sub;
    }
    sub_at = i;
    break;
  }
  if (cmd == nullptr) return args;
  std::string file;
  for (size_t i = sub_at + 1; i < args.size(); ++i) {
    if (args[i] == kConfig && i + 1 < args.size()) file = args[i + 1];
    if (args[i].starts_with(std::string(kConfig) + "=")) file = args[i].substr(std::string(kConfig).size() + 1);
  }
  if (file.empty()) return args;

  toml::table table;
  try {
    table = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    if (!src.path && src.begin.line == 0) {
      return absl::InvalidArgumentError("--config " + file + ": " + std::string(e.description()));
    }
    return absl::InvalidArgumentError(where(file, src) + ": " + std::string(e.description()));
  }
  const auto given = given_options(*cmd, args, sub_at + 1);
  std::vector<std::string> before;  // app-level keys (log-level)
  std::vector<std::string> inserted;
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    const std::string at = where(file, k.source().begin.line > 0 ? k.source() : node.source());
    const bool ours = key == "config" || key == "print-config" || key == "help";
    CLI::Option* opt = ours ? nullptr : cmd->get_option_no_throw("--" + key);
    std::vector<std::string>* into = &inserted;
    if (opt == nullptr && !ours) {
      opt = app.get_option_no_throw("--" + key);
      into = &before;
    }
    if (opt == nullptr || key == "version") {
      return absl::InvalidArgumentError(at + ": unknown key '" + key + "' for " + cmd->get_name() +
                                        " (keys are its flags without the dashes; see " + cmd->get_name() +
                                        " --help)");
    }
    if (given.contains(opt)) continue;  // the command line wins
    std::vector<const toml::node*> items;
    if (auto arr = node.as_array()) {
      if (opt->get_items_expected_max() <= 1 && arr->size() != 1) {
        return absl::InvalidArgumentError(at + ": key '" + key + "' takes one value, not a list");
      }
      for (const auto& item : *arr) items.push_back(&item);
    } else if (node.is_table()) {
      return absl::InvalidArgumentError(at + ": key '" + key + "' is a table; the file is flat (" +
                                        key + " = value)");
    } else {
      items.push_back(&node);
    }
    for (const auto* item : items) {
      auto text = value_text(*item, key, at);
      if (!text.ok()) return text.status();
      if (is_flag(opt)) {
        if (!item->is_boolean()) {
          return absl::InvalidArgumentError(at + ": key '" + key + "' is a switch: true or false");
        }
        if (*text == "true") into->push_back("--" + key);
        continue;
      }
      into->push_back("--" + key + "=" + *text);
    }
  }
  std::vector<std::string> out(args.begin(), args.begin() + long(sub_at));
  out.insert(out.end(), before.begin(), before.end());
  out.push_back(args[sub_at]);
  out.insert(out.end(), inserted.begin(), inserted.end());
  out.insert(out.end(), args.begin() + long(sub_at) + 1, args.end());
  return out;
}

std::string print_config_requested(CLI::App& app) {
  for (auto* cmd : app.get_subcommands()) {
    auto* flag = cmd->get_option_no_throw(kPrintConfig);
    if (flag == nullptr || flag->count() == 0) continue;
    std::string out = "# kurrent-ingest " + cmd->get_name() + ": effective configuration\n";
    for (const auto* opt : cmd->get_options()) {
      if (opt->get_lnames().empty()) continue;
      const std::string name = opt->get_lnames().front();
      if (name == "help" || name == "config" || name == "print-config") continue;
      if (is_flag(opt)) {
        out += name + " = " + (opt->as<bool>() ? "true" : "false") + "\n";
        continue;
      }
      std::vector<std::string> values = opt->results();
      if (values.empty() && !opt->get_default_str().empty()) values.push_back(opt->get_default_str());
      if (values.empty()) {
        out += "# " + name + " =\n";
        continue;
      }
      for (auto& v : values) {
        v = mask_secrets(v);
        // serve-store --user NAME:PASSWORD
        if (name == "user" && v.find(':') != std::string::npos) v = v.substr(0, v.find(':')) + ":****";
      }
      if (opt->get_items_expected_max() > 1) {
        out += name + " = [";
        for (size_t i = 0; i < values.size(); ++i) out += (i > 0 ? ", " : "") + toml_quote(values[i]);
        out += "]\n";
      } else {
        out += name + " = " + toml_value(values.back()) + "\n";
      }
    }
    return out;
  }
  return {};
}

std::string mask_secrets(const std::string& text) {
  static const std::regex url_password(R"(([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@)");
  static const std::regex key_password(R"(((?:password|secret|token)[A-Za-z0-9_.-]*\s*[=:]\s*)[^\s&,]+)",
                                       std::regex::icase);
  std::string out = std::regex_replace(text, url_password, "$1:****@");
  return std::regex_replace(out, key_password, "$1****");
}

}  // namespace kingest::cli
