# Default resource policy (docs/tokens-and-policies.md): release a resource only when every submod of the EAR token is
# affirming and the evidence does not come from the sample TEE.
#   input: the EAR claims; data: {"plugin": "resource", "resource-path": [repo, type, tag], "query": {}}
package policy

import rego.v1

default allow := false

allow if count(reasons) == 0

# An EAR's submods is an object (name -> submod); anything else counts as no submods. (Iterating over a string
# is an error in regorus and nothing in OPA: both deny, this says so for both.)
submods := s if {
	s := object.get(input, "submods", {})
	is_object(s)
} else := {}

reasons contains "the token has no submods" if count(submods) == 0

reasons contains sprintf("submod %s is %v, not affirming", [name, status]) if {
	some name, submod in submods
	status := object.get(submod, "ear.status", "none")
	status != "affirming"
}

reasons contains sprintf("submod %s comes from the sample TEE", [name]) if {
	some name, submod in submods
	object.get(submod, ["ear.veraison.annotated-evidence", "sample"], null) != null
}

reasons contains sprintf("submod %s comes from the sample device", [name]) if {
	some name, submod in submods
	object.get(submod, ["ear.veraison.annotated-evidence", "sampledevice"], null) != null
}
