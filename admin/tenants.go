package admin

// tenantRoutes registers the tenants routes.
func (s *Server) tenantRoutes() {}
