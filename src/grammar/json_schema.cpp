// JSON Schema to GBNF. Whitespace between tokens is bounded (a newline and
// at most 16 spaces or tabs) so that a small model cannot pad for ever.
#include "frugal/json_schema.h"

#include <map>
#include <set>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace {

using json = nlohmann::ordered_json;  // keeps the schema's order of properties

constexpr std::string_view kPrimitives = R"(ws ::= | " " | "\n" [ \t]{0,16}
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\"" ws
number ::= "-"? ([0-9] | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? ws
integer ::= "-"? ([0-9] | [1-9] [0-9]{0,15}) ws
boolean ::= ("true" | "false") ws
null ::= "null" ws
value ::= object | array | string | number | boolean | null
object ::= "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}" ws
array ::= "[" ws (value ("," ws value)*)? "]" ws
)";

// A GBNF string literal of `text` (JSON text: printable ASCII and UTF-8).
std::string literal(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

class Converter {
 public:
  explicit Converter(const json& root) : root_(root) {}

  std::string convert() {
    const std::string top = visit(root_, "root", "");
    std::string out;
    if (top != "root") out += "root ::= " + top + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out + std::string(kPrimitives);
  }

 private:
  [[noreturn]] static void refuse(const std::string& path, const std::string& what) {
    throw Error(fmt::format("JSON schema: {} at {} is not supported by frugal's constrained decoding",
                            what, path.empty() ? "the top level" : path));
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  std::string rule_name(const std::string& hint) {
    std::string name;
    for (const char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) name = "r-" + name;
    std::string unique = name;
    for (int i = 2; rules_.count(unique) || reserved(unique); ++i) unique = fmt::format("{}-{}", name, i);
    rules_[unique] = "";  // claimed; the body comes later
    return unique;
  }
  static bool reserved(const std::string& name) {
    static const std::set<std::string> kNames = {"ws", "char", "string", "number", "integer", "boolean",
                                                 "null", "value", "object", "array"};
    return kNames.count(name) > 0;
  }

  // The rule (or primitive) for `schema`; `path` names it in errors.
  std::string visit(const json& schema, const std::string& hint, const std::string& path) {
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return "value";
      refuse(path, "a schema of false (nothing is allowed)");
    }
    if (!schema.is_object()) refuse(path, "a schema that is not an object");
    static const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema",
                                                       "$id", "$comment", "$defs", "definitions", "strict"};
    static const std::set<std::string> kHandled = {"type", "properties", "required", "additionalProperties",
                                                   "items", "minItems", "maxItems", "enum", "const", "anyOf",
                                                   "oneOf", "$ref", "minLength", "maxLength"};
    for (const auto& [key, value] : schema.items()) {
      if (!kAnnotations.count(key) && !kHandled.count(key)) refuse(join(path, key), fmt::format("'{}'", key));
    }
    if (schema.contains("$ref")) return reference(schema["$ref"], path);
    if (schema.contains("const")) return literal(schema["const"].dump()) + " ws";
    if (schema.contains("enum")) {
      if (!schema["enum"].is_array() || schema["enum"].empty()) refuse(join(path, "enum"), "an empty enum");
      std::string body;
      for (const auto& item : schema["enum"]) body += (body.empty() ? "" : " | ") + literal(item.dump());
      return define(hint, "(" + body + ") ws");
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!schema.contains(key)) continue;
      if (!schema[key].is_array() || schema[key].empty()) refuse(join(path, key), "an empty list");
      std::string body;
      for (size_t i = 0; i < schema[key].size(); ++i) {
        body += (body.empty() ? "" : " | ") + visit(schema[key][i], hint + "-" + std::to_string(i),
                                                  join(path, fmt::format("{}[{}]", key, i)));
      }
      return define(hint, body);
    }
    if (!schema.contains("type")) {
      if (schema.contains("properties") || schema.contains("required") || schema.contains("additionalProperties")) {
        return object(schema, hint, path);
      }
      for (const char* key : {"items", "minItems", "maxItems", "minLength", "maxLength"}) {
        if (schema.contains(key)) refuse(join(path, key), fmt::format("'{}' without a type", key));
      }
      return "value";  // no constraint
    }
    if (!schema["type"].is_string() && !schema["type"].is_array()) refuse(join(path, "type"), "a type that is not a name");
    const json& type = schema["type"];
    if (type.is_array()) {
      std::string body;
      for (const auto& one : type) {
        json single = schema;
        single["type"] = one;
        body += (body.empty() ? "" : " | ") + visit(single, hint + "-" + one.get<std::string>(), path);
      }
      return define(hint, body);
    }
    const std::string name = type.get<std::string>();
    if (name == "object") return object(schema, hint, path);
    if (name == "array") return array(schema, hint, path);
    if (name == "string") return string(schema, hint, path);
    if (name == "number" || name == "integer" || name == "boolean" || name == "null") return name;
    refuse(join(path, "type"), fmt::format("type '{}'", name));
  }

  std::string define(const std::string& hint, const std::string& body) {
    const std::string name = rule_name(hint);
    rules_[name] = body;
    return name;
  }

  std::string reference(const json& ref, const std::string& path) {
    if (!ref.is_string()) refuse(join(path, "$ref"), "a $ref that is not a string");
    const std::string target = ref.get<std::string>();
    if (const auto it = refs_.find(target); it != refs_.end()) return it->second;
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      if (!target.starts_with(prefix)) continue;
      const std::string key = target.substr(std::string_view(prefix).size());
      const char* section = std::string_view(prefix) == "#/$defs/" ? "$defs" : "definitions";
      if (!root_.contains(section) || !root_[section].contains(key)) {
        refuse(join(path, "$ref"), fmt::format("'{}', which names no definition,", target));
      }
      // Named before it is visited, so a definition may refer to itself.
      const std::string name = rule_name("def-" + key);
      refs_[target] = name;
      const std::string body = visit(root_[section][key], "def-" + key + "-body", fmt::format("{}.{}", section, key));
      rules_[name] = body;
      return name;
    }
    if (target == "#") return refs_["#"] = "root";
    refuse(join(path, "$ref"), fmt::format("'{}' (only #/$defs/... and #/definitions/...)", target));
  }

  std::string object(const json& schema, const std::string& hint, const std::string& path) {
    const bool closed = schema.contains("additionalProperties");
    if (closed) {
      const json& extra = schema["additionalProperties"];
      if (!(extra.is_boolean() && !extra.get<bool>())) {
        refuse(join(path, "additionalProperties"), "additionalProperties other than false");
      }
    }
    // No properties named and none forbidden: any object.
    if (!closed && !schema.contains("properties") && !schema.contains("required")) return "object";
    std::vector<std::string> required, optional;
    std::map<std::string, std::string> pairs;
    std::set<std::string> needed;
    if (schema.contains("required")) {
      for (const auto& key : schema["required"]) needed.insert(key.get<std::string>());
    }
    if (schema.contains("properties")) {
      for (const auto& [key, sub] : schema["properties"].items()) {
        const std::string value = visit(sub, hint + "-" + key, join(path, "properties." + key));
        pairs[key] = literal(json(key).dump()) + " ws \":\" ws " + value;
        (needed.count(key) ? required : optional).push_back(key);
      }
    }
    for (const auto& key : needed) {
      if (!pairs.count(key)) refuse(join(path, "required"), fmt::format("required property '{}' without a schema", key));
    }
    // Required properties in order, then each optional one after a comma;
    // with none required, the first present optional one starts the list.
    std::string body;
    for (size_t i = 0; i < required.size(); ++i) body += (i ? " \",\" ws " : "") + pairs[required[i]];
    if (!required.empty()) {
      for (const auto& key : optional) body += " (\",\" ws " + pairs[key] + ")?";
    } else if (!optional.empty()) {
      std::string alternatives;
      for (size_t first = 0; first < optional.size(); ++first) {
        std::string alternative = pairs[optional[first]];
        for (size_t i = first + 1; i < optional.size(); ++i) alternative += " (\",\" ws " + pairs[optional[i]] + ")?";
        alternatives += (alternatives.empty() ? "" : " | ") + alternative;
      }
      body = "(" + alternatives + ")?";
    }
    return define(hint, "\"{\" ws " + body + " \"}\" ws");
  }

  static int count(const json& schema, const char* key, const std::string& path) {
    if (!schema.contains(key)) return -1;
    if (!schema[key].is_number_unsigned() || schema[key].get<uint64_t>() > 1000) {
      refuse(join(path, key), fmt::format("{} that is not a whole number up to 1000", key));
    }
    return static_cast<int>(schema[key].get<uint64_t>());
  }

  std::string array(const json& schema, const std::string& hint, const std::string& path) {
    const std::string item = schema.contains("items") ? visit(schema["items"], hint + "-item", join(path, "items"))
                                                      : "value";
    const int min = std::max(count(schema, "minItems", path), 0), max = count(schema, "maxItems", path);
    if (max >= 0 && max < min) refuse(join(path, "maxItems"), "maxItems below minItems");
    std::string body;
    if (max == 0) {
      body = "";
    } else {
      const std::string more = max < 0 ? fmt::format("{{{},}}", std::max(min - 1, 0))
                                       : fmt::format("{{{},{}}}", std::max(min - 1, 0), max - 1);
      body = item + " (\",\" ws " + item + ")" + more;
      if (min == 0) body = "(" + body + ")?";
    }
    return define(hint, "\"[\" ws " + body + " \"]\" ws");
  }

  std::string string(const json& schema, const std::string& hint, const std::string& path) {
    const int min = count(schema, "minLength", path), max = count(schema, "maxLength", path);
    if (min < 0 && max < 0) return "string";
    if (max >= 0 && max < std::max(min, 0)) refuse(join(path, "maxLength"), "maxLength below minLength");
    const std::string repeat = max < 0 ? fmt::format("{{{},}}", std::max(min, 0))
                                       : fmt::format("{{{},{}}}", std::max(min, 0), max);
    return define(hint, "\"\\\"\" char" + repeat + " \"\\\"\" ws");
  }

  const json& root_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema) {
  try {
    return Converter(schema).convert();
  } catch (const nlohmann::json::exception& e) {  // a value of the wrong JSON type somewhere
    throw Error(fmt::format("JSON schema: {}", e.what()));
  }
}

std::string json_schema_to_gbnf(const nlohmann::json& schema) {
  return json_schema_to_gbnf(nlohmann::ordered_json::parse(schema.dump()));
}

std::string json_object_gbnf() { return "root ::= object\n" + std::string(kPrimitives); }

}  // namespace frugal
