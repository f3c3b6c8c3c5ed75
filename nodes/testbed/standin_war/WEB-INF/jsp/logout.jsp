<%--
  /jw/j_spring_security_logout: ends the session, back to the login form.
--%><%@ page session="false" trimDirectiveWhitespaces="true" %><%
    jakarta.servlet.http.HttpSession s = request.getSession(false);
    if (s != null) {
        s.invalidate();
    }
    response.sendRedirect(request.getContextPath() + "/web/login");
%>
