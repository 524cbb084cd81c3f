// Package config defines capstan's YAML configuration file (capstan.yaml):
// the schema as Go structs, ${ENV} expansion inside string scalars, defaults
// in one place (applyDefaults) and validation that reports every problem at
// once as file:line:col: field.path: reason.
//
// The decoder walks the yaml.v3 node tree itself instead of relying on
// yaml.v3's struct decoding, so that unknown keys, wrong types and unset
// environment variables are all reported together with their position.
// Package config is a leaf: it imports no other capstan package. It knows the
// shape of a mapping's fields (arbitrary Segment mapping-kit JSON) but not
// their meaning; internal/mapping compiles them.
package config
