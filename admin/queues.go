package admin

// queueRoutes registers the queues routes.
func (s *Server) queueRoutes() {}
