// JSON Schema to GBNF: the grammar of the JSON texts a schema accepts, for
// constrained decoding (response_format json_schema, --json-schema).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace frugal {

// A GBNF grammar (root rule "root") for the JSON values `schema` accepts:
// type (one or a list), properties / required / additionalProperties (false
// or absent: only the listed properties), items / minItems / maxItems,
// enum, const, anyOf / oneOf, $ref into $defs or definitions (recursion
// allowed), minLength / maxLength of strings; annotations (title,
// description, default, examples, $schema, $id, $comment) are ignored. Any
// other keyword (pattern, format, minimum, ...) throws Error naming where it
// is (e.g. "properties.age.minimum"): a schema is never half applied.
// Properties are written in the schema's order: pass an ordered_json parsed
// from the schema's text (a plain json has its keys sorted).
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);
std::string json_schema_to_gbnf(const nlohmann::json& schema);

// Any JSON object (response_format json_object).
std::string json_object_gbnf();

}  // namespace frugal
