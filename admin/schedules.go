package admin

// scheduleRoutes registers the schedules routes.
func (s *Server) scheduleRoutes() {}
