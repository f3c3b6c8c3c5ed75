<%--
  POST /jw/j_spring_security_check (j_username, j_password), like Spring Security's form login:
  success -> session + redirect to /jw/web/console/home; failure (or not a POST) -> /jw/web/login?login_error=1.
--%><%@ page session="false" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    String ctx = request.getContextPath();
    String[] admin = adminCredentials();
    String user = request.getParameter("j_username");
    String pass = request.getParameter("j_password");
    boolean ok = "POST".equals(request.getMethod()) && user != null && pass != null
            && constantTimeEquals(user, admin[0]) & constantTimeEquals(pass, admin[1]);
    if (ok) {
        jakarta.servlet.http.HttpSession s = request.getSession(true);
        if (!s.isNew()) {
            request.changeSessionId();
        }
        s.setAttribute(SESSION_USER, user);
        response.sendRedirect(ctx + "/web/console/home");
    } else {
        response.sendRedirect(ctx + "/web/login?login_error=1");
    }
%>
