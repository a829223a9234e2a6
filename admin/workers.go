package admin

// workerRoutes registers the workers routes.
func (s *Server) workerRoutes() {}
