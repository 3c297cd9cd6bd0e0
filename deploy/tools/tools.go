//go:build tools

// Package tools pins the build tools that the deploy/ tests run, in a module
// of their own so that the connector's go.mod stays free of them.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
