package admin

// workflowRoutes registers the workflows routes.
func (s *Server) workflowRoutes() {}
