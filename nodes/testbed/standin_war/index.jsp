<%@ page session="false" trimDirectiveWhitespaces="true" %><% response.sendRedirect(request.getContextPath() + "/web/console/home"); %>
