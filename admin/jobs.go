package admin

// jobRoutes registers the jobs routes.
func (s *Server) jobRoutes() {}
