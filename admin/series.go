package admin

// seriesRoutes registers the series routes.
func (s *Server) seriesRoutes() {}
