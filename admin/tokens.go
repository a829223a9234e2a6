package admin

// tokenRoutes registers the tokens routes.
func (s *Server) tokenRoutes() {}
