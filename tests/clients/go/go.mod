module waiaas-go-smoke

go 1.23

require (
	github.com/GIT_USER_ID/GIT_REPO_ID v0.0.0
	gopkg.in/validator.v2 v2.0.1
)

// run.sh builds in target/clients/go-build: the generated client and validator.v2 (Debian's source) sit next to
// this module, so nothing is fetched from a module proxy.
replace (
	github.com/GIT_USER_ID/GIT_REPO_ID => ./generated
	gopkg.in/validator.v2 => ./validator
)
